"""McpSkillsBackend: skills published by MCP servers, run in a sandbox beside your own.

When its session opens, the backend connects to each server (unless already
connected), lists its skills through the Skills extension, verifies and
writes every file (:mod:`._served`) into a fresh temporary directory, and
builds the backend that runs them -- Docker or bubblewrap by default, the
plain Local backend only with ``allow_unsandboxed=True`` -- from your own
skills plus the served ones. It then passes every call through to that
backend. Closing the session closes it and removes the directory (also after
a failed open).

Served skills are named per origin (``<label>.<name>``, the label being the
key you gave the server) and their descriptions say which server they came
from, so one can never silently stand in for a local skill of the same name.
See ``docs/adr/0009-skills-from-mcp-servers.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from conjure_async._exceptions import BackendError, SkillConflictError
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.events import CreatedFile
from conjure_async.mcp._backend import McpBackend
from conjure_async.mcp._served import check_label, fetch_served_skills
from conjure_async.skills import Skill

if TYPE_CHECKING:
    from conjure_async.events import Event
    from conjure_async.messages import (
        ContentBlock,
        MessagesRequest,
        MessagesResponse,
        ToolDefinition,
    )
    from conjure_async.skills import SkillListing

__all__ = ["McpSkillsBackend"]

BackendFactory = Callable[[list[Skill]], Backend]

_UNSANDBOXED = (
    "skills served over MCP are untrusted code: they run on DockerBackend or "
    "LocalBackend(sandbox='bwrap'); to run them on {what} anyway, pass allow_unsandboxed=True"
)


def _is_sandbox(backend: Backend) -> bool:
    """Whether ``backend`` confines commands (a container, or bubblewrap)."""
    if type(backend).kind == "docker":
        return True
    return type(backend).kind == "local" and getattr(backend, "sandbox", "none") == "bwrap"


def _make_directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="conjure-mcp-skills-")).resolve()


def _choose(backend: str | BackendFactory, allow_unsandboxed: bool) -> BackendFactory:
    if callable(backend):
        return backend
    if backend == "docker":
        from conjure_async.backends import DockerBackend  # noqa: PLC0415 - needs [docker]

        return DockerBackend
    from conjure_async.backends import LocalBackend  # noqa: PLC0415 - one import per choice

    if backend == "bwrap":
        return functools.partial(LocalBackend, sandbox="bwrap")
    if backend == "local":
        if not allow_unsandboxed:
            raise ValueError(_UNSANDBOXED.format(what="the host without a sandbox ('local')"))
        return LocalBackend
    raise ValueError(f"backend must be 'docker', 'bwrap', 'local' or a callable, not {backend!r}")


class McpSkillsBackend(Backend):
    """Skills published by MCP servers (the Skills extension), run in a sandbox.

    Every file of every skill a server lists is verified against its
    ``sha256`` digest and size before it is written (a mismatch fails the
    session's open with :class:`~conjure_async.McpError` naming the server and
    the file). The files live in a temporary directory for the session's
    lifetime, at a path encoding the server's identity and each file's URI.
    A served skill is offered as ``<label>.<name>`` with a description naming
    its server, beside your own ``skills``, on one backend::

        team = McpBackend(["conjure", "mcp", "serve", "team-skills/"])
        backend = McpSkillsBackend({"team": team}, skills=load_skills("skills"))
        async with Session(backend, model=model) as session:
            ...

    Args:
        servers: Label → server. The label (lowercase letters, digits,
            hyphens) is yours, not the server's self-reported name; it
            prefixes the names of that server's skills.
        backend: Where the skills (yours and the served ones) run:
            ``"docker"`` (default), ``"bwrap"`` (``LocalBackend(sandbox="bwrap")``),
            ``"local"`` (the host, unsandboxed: needs ``allow_unsandboxed``),
            or a callable building a backend from the skills.
        skills: Your own skills, offered beside the served ones.
        allow_unsandboxed: Allow a backend that is not a sandbox (Docker or
            bubblewrap) to run the served skills.

    Raises:
        ValueError: A label is invalid, or ``backend="local"`` without
            ``allow_unsandboxed`` (a callable building such a backend raises
            it when the session opens).
    """

    kind: ClassVar[str] = "mcp-skills"

    def __init__(
        self,
        servers: Mapping[str, McpBackend],
        *,
        backend: str | BackendFactory = "docker",
        skills: Iterable[Skill] = (),
        allow_unsandboxed: bool = False,
    ) -> None:
        self.servers = {check_label(label): server for label, server in servers.items()}
        for label, server in self.servers.items():
            if not isinstance(server, McpBackend):
                raise TypeError(f"server {label!r} is not an McpBackend: {server!r}")
        self.local_skills = list(skills)
        self.allow_unsandboxed = allow_unsandboxed
        self._factory = _choose(backend, allow_unsandboxed)
        self.served: list[Skill] = []
        """The served skills, as offered (after the session opened)."""
        self._inner: Backend | None = None
        self._root: Path | None = None
        self._saved_state: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"McpSkillsBackend(servers={sorted(self.servers)}, backend={self._inner!r})"

    @property
    def backend(self) -> Backend:
        """The backend running the skills (once the session opened)."""
        if self._inner is None:
            raise BackendError("McpSkillsBackend is not open")
        return self._inner

    @property
    def directory(self) -> Path | None:
        """Where the served skills' files are, while the session is open."""
        return self._root

    # -- lifecycle -----------------------------------------------------------

    async def open(self, ctx: BackendContext) -> None:
        """Fetch, verify and write the served skills; build and open the running backend.

        Raises:
            McpError: A server cannot be reached, does not serve skills, or
                serves one that fails verification.
            SkillConflictError: A served skill's name is one of your skills'.
            ValueError: The backend built is not a sandbox and
                ``allow_unsandboxed`` is false.
        """
        if self._root is not None:
            raise BackendError("this McpSkillsBackend is already in use by another session")
        self._root = await anyio.to_thread.run_sync(_make_directory)
        try:
            served: list[Skill] = []
            for label, server in self.servers.items():
                served += await self._fetch(label, server, ctx)
            inner = self._build(served)
            await inner.open(ctx)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._remove_directory()
            raise
        self._inner, self.served = inner, served
        ctx.logger.debug(
            "mcp.skills_loaded", skills=[s.name for s in served], directory=str(self._root)
        )

    async def _fetch(self, label: str, server: McpBackend, ctx: BackendContext) -> list[Skill]:
        assert self._root is not None
        connected_here = not server.connected
        if connected_here:
            await server.connect(ctx.task_group)
        try:
            return await fetch_served_skills(server, label, self._root)
        finally:
            if connected_here:
                with anyio.CancelScope(shield=True):
                    await server.aclose()

    def _build(self, served: Sequence[Skill]) -> Backend:
        """The backend running your skills and the served ones (checked, not opened)."""
        local = {s.name for s in self.local_skills}
        for skill in served:
            if skill.name in local:
                raise SkillConflictError(
                    f"served skill {skill.name!r} has the name of one of your skills; "
                    "rename yours (served skills are named <label>.<name>)"
                )
        inner = self._factory([*self.local_skills, *served])
        if not self.allow_unsandboxed and not _is_sandbox(inner):
            raise ValueError(_UNSANDBOXED.format(what=repr(inner)))
        if self._saved_state is not None:
            inner.load_state(self._saved_state)
        return inner

    async def aclose(self) -> None:
        """Close the running backend and remove the served skills' files."""
        inner, self._inner = self._inner, None
        try:
            if inner is not None:
                await inner.aclose()
        finally:
            await self._remove_directory()
            self.served = []

    async def _remove_directory(self) -> None:
        root, self._root = self._root, None
        if root is not None:
            await anyio.to_thread.run_sync(
                functools.partial(shutil.rmtree, root, ignore_errors=True)
            )

    # -- what the model sees: the running backend's --------------------------

    def skill_listings(self) -> Sequence[SkillListing]:
        """Your skills and the served ones, where the running backend sees them."""
        return self._inner.skill_listings() if self._inner is not None else ()

    def tools(self) -> Sequence[ToolDefinition]:
        """The running backend's tools (none before the session opened)."""
        return self._inner.tools() if self._inner is not None else ()

    def prompt_notes(self) -> str | None:
        """The running backend's notes."""
        return self._inner.prompt_notes() if self._inner is not None else None

    def prepare_request(self, request: MessagesRequest) -> MessagesRequest:
        """The running backend's additions to the request."""
        return self.backend.prepare_request(request)

    def handle_block(self, block: ContentBlock) -> Sequence[Event]:
        """The running backend's events for a block."""
        return self.backend.handle_block(block)

    def handle_response(self, response: MessagesResponse) -> Sequence[Event]:
        """The running backend's events for a response."""
        return self.backend.handle_response(response)

    async def after_response(self) -> Sequence[Event]:
        """The running backend's events after a response."""
        return await self.backend.after_response()

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run the call on the running backend; its files are reported as this backend's."""
        events = self.backend.run_tool(call, ctx)
        try:
            async for event in events:
                if isinstance(event, ToolResult) and event.files:
                    files = tuple(f.model_copy(update={"source": self.kind}) for f in event.files)
                    event = dataclasses.replace(event, files=files)  # noqa: PLW2901 - relabelled
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # run_tool is an async generator

    async def download(
        self, file: CreatedFile, directory: Path, *, overwrite: bool = False
    ) -> Path:
        """Fetch a file the running backend created."""
        inner = self.backend
        original = file.model_copy(update={"source": type(inner).kind})
        return await inner.download(original, directory, overwrite=overwrite)

    def dump_state(self) -> dict[str, Any]:
        """The running backend's state."""
        if self._inner is not None:
            return self._inner.dump_state()
        return dict(self._saved_state or {})

    def load_state(self, state: dict[str, Any]) -> None:
        """Keep ``state`` for the running backend built when the session opens."""
        self._saved_state = dict(state)
