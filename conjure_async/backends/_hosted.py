"""The Anthropic (hosted) backend: skills in Anthropic-managed code execution containers.

Nothing runs locally. Each request carries the code execution tool,
``container: {id, skills}`` and the beta headers; the model runs bash and
file edits in a container on Anthropic's side, and the responses report what
ran as server tool blocks, which this backend turns into the same
``tool_started`` / ``tool_finished`` / ``file_created`` events a local run
produces. Against the real API::

    import anyio
    from conjure_async import Session, load_skills
    from conjure_async.backends import AnthropicBackend, AnthropicSkill
    from conjure_async.models import AnthropicModel

    async def main() -> None:
        async with AnthropicModel("claude-sonnet-5-5") as model:      # ANTHROPIC_API_KEY
            backend = AnthropicBackend(
                [AnthropicSkill("xlsx"), *load_skills("skills/budget-builder")],
                api=model.api,                                        # share the pool
            )
            async with Session(backend, model=model) as session:
                reply = await session.chat("Build a budget workbook for 2027")
                for created in reply.files:
                    await session.download(created, "out/")     # via the Files API

    anyio.run(main)

Local skills (folders or ``.skill`` packages loaded with
:func:`~conjure_async.skills.load_skills`) are uploaded through the Skills API
when the session opens, before the first turn. An unchanged skill (same
:attr:`~conjure_async.skills.Skill.content_hash`) is not uploaded again: a
local JSON index (``$CONJURE_CACHE_DIR/anthropic-skills.json``, else
``~/.cache/conjure_async/anthropic-skills.json``) remembers its skill id and
version, checked against the API (``GET /v1/skills/{id}``) before reuse.
Sessions in several tasks or processes sharing the index upload a given
content once: the decision (:mod:`conjure_async.backends._hosted_uploads`) is
taken under a lock per content hash (see :mod:`conjure_async.backends._hosted_index`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio

from conjure_async._exceptions import (
    APIError,
    BackendError,
    ConjureError,
    NotFoundError,
    SessionStateError,
    SkillValidationError,
)
from conjure_async._logging import Logger, get_logger
from conjure_async.anthropic._api import AnthropicAPI, RetryPolicy, merge_betas
from conjure_async.anthropic._files import FILES_BETA, FilesClient
from conjure_async.anthropic._models import FileInfo
from conjure_async.anthropic._skills import (
    SKILLS_BETA,
    SkillsClient,
    skill_upload_files,
    upload_problems,
)
from conjure_async.backends._base import Backend, BackendContext
from conjure_async.backends._hosted_index import UploadIndex
from conjure_async.backends._hosted_results import outcome_of
from conjure_async.backends._hosted_uploads import Uploaded, delete_uploads, upload_or_reuse
from conjure_async.events import CreatedFile, Event, FileCreated, ToolFinished, ToolStarted
from conjure_async.messages import (
    ContentBlock,
    MessagesRequest,
    MessagesResponse,
    ServerToolResultBlock,
    ServerToolUseBlock,
)
from conjure_async.skills import Skill, SkillListing

__all__ = [
    "CODE_EXECUTION_BETA",
    "DEFAULT_BETAS",
    "DEFAULT_CODE_EXECUTION_TOOL",
    "HOSTED_READ_WITH",
    "MAX_SKILLS",
    "AnthropicBackend",
    "AnthropicSkill",
    "default_index_path",
]

DEFAULT_CODE_EXECUTION_TOOL = "code_execution_20250825"
"""The code execution tool version sent unless told otherwise (bash and file edits)."""

CODE_EXECUTION_BETA = "code-execution-2025-08-25"

DEFAULT_BETAS = (CODE_EXECUTION_BETA, SKILLS_BETA, FILES_BETA)
"""The ``anthropic-beta`` values the backend adds to each request. Since the
APIs left beta they are optional; sending them keeps the documented shapes."""

MAX_SKILLS = 8
"""At most this many skills per request (the API's limit)."""

PREBUILT_DESCRIPTIONS: Mapping[str, str] = {
    "xlsx": "Create, edit and analyze Excel spreadsheets (formulas, formatting, charts).",
    "pptx": "Create and edit PowerPoint presentations.",
    "docx": "Create and edit Word documents.",
    "pdf": "Create PDF documents, fill forms, extract text and tables.",
}

HOSTED_READ_WITH = (
    "in your code execution container, where the skills are mounted under /skills/ "
    "(list them with `ls /skills`, then read one with bash, e.g. "
    "`cat /skills/<directory>/SKILL.md`, or with the text editor's view command)"
)
"""How the model reads a hosted skill's ``SKILL.md``: hosted requests offer code
execution (bash and a text editor in the container), not the ``view`` tool."""

_SERVER_TOOLS = frozenset({"bash_code_execution", "text_editor_code_execution", "code_execution"})
_RESULT_TOOLS = {
    "bash_code_execution_tool_result": "bash_code_execution",
    "text_editor_code_execution_tool_result": "text_editor_code_execution",
    "code_execution_tool_result": "code_execution",
}


@dataclass(frozen=True, slots=True)
class AnthropicSkill:
    """A skill that already lives on Anthropic's side.

    ``AnthropicSkill("xlsx")`` is one of Anthropic's pre-built skills
    (``xlsx``, ``pptx``, ``docx``, ``pdf``); ``AnthropicSkill("skill_01...",
    type="custom", version="1759178010641129")`` is a custom skill uploaded
    earlier.
    """

    skill_id: str
    """``xlsx`` for a pre-built skill, ``skill_01...`` for a custom one."""
    version: str = "latest"
    """A date version (``20251013``), an epoch-microseconds version, or ``latest``."""
    type: Literal["anthropic", "custom"] = "anthropic"
    description: str | None = None
    """What the model is told it does (pre-built skills have a default)."""

    def to_wire(self) -> dict[str, str]:
        """The ``container.skills`` entry."""
        return {"type": self.type, "skill_id": self.skill_id, "version": self.version}


def default_index_path() -> Path:
    """Where uploaded skills are remembered.

    ``$CONJURE_CACHE_DIR/anthropic-skills.json`` when set, else
    ``$XDG_CACHE_HOME/conjure_async/anthropic-skills.json`` (``~/.cache`` by default).
    """
    configured = os.environ.get("CONJURE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser() / "anthropic-skills.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "conjure_async" / "anthropic-skills.json"


class AnthropicBackend(Backend):
    """Runs skills in Anthropic-managed code execution containers.

    Args:
        skills: Pre-built or already uploaded skills (:class:`AnthropicSkill`)
            and local ones (:class:`~conjure_async.skills.Skill`, from
            ``load_skills``), at most 8 in all.
        api: The HTTP layer for the Skills and Files APIs (e.g.
            ``AnthropicModel(...).api``); not closed by this backend. Without
            it the backend creates one (from ``api_key``/``base_url`` or the
            environment) when it first needs one, and closes it on close.
        api_key: The API key for that client (default ``$ANTHROPIC_API_KEY``).
        base_url: Its base URL (default ``$ANTHROPIC_BASE_URL`` or the real API).
        retry: Its retry policy.
        code_execution_tool: The tool ``type`` sent (default
            ``code_execution_20250825``).
        betas: The ``anthropic-beta`` values added to each request.
        cleanup: Delete the skills this backend uploaded (versions, then the
            skill) when the session closes.
        index_path: The upload index (default :func:`default_index_path`).
        container_id: Start in this container instead of a new one.

    Raises:
        ValueError: More than 8 skills (before any network call).
    """

    kind: ClassVar[str] = "anthropic"

    def __init__(
        self,
        skills: Sequence[AnthropicSkill | Skill] = (),
        *,
        api: AnthropicAPI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        code_execution_tool: str = DEFAULT_CODE_EXECUTION_TOOL,
        betas: Sequence[str] = DEFAULT_BETAS,
        cleanup: bool = False,
        index_path: str | os.PathLike[str] | None = None,
        container_id: str | None = None,
    ) -> None:
        skills = list(skills)
        if len(skills) > MAX_SKILLS:
            raise ValueError(
                f"AnthropicBackend got {len(skills)} skills; the API allows at most "
                f"{MAX_SKILLS} per request"
            )
        for skill in skills:
            if not isinstance(skill, AnthropicSkill | Skill):
                raise TypeError(
                    f"skills must be AnthropicSkill or Skill objects, got {type(skill).__name__}"
                )
        names = [s.name for s in skills if isinstance(s, Skill)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two local skills share the name {duplicates[0]!r}")
        self.skills: list[AnthropicSkill | Skill] = skills
        self.code_execution_tool = code_execution_tool
        self.betas = list(betas)
        self.cleanup = cleanup
        self.index_path = Path(index_path) if index_path is not None else default_index_path()
        self.container_id: str | None = container_id
        self._api = api
        self._api_options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "retry": retry,
        }
        self._owned_api: AnthropicAPI | None = None
        self._uploaded: list[Uploaded] = []
        self._pending: dict[str, str] = {}
        self._new_files: list[tuple[str, str]] = []
        self._log: Logger = get_logger(backend="anthropic")
        self._closed = False

    def __repr__(self) -> str:
        names = [s.skill_id if isinstance(s, AnthropicSkill) else s.name for s in self.skills]
        return f"{type(self).__name__}(skills={names!r}, container_id={self.container_id!r})"

    # -- the HTTP clients --------------------------------------------------------

    @property
    def api(self) -> AnthropicAPI:
        """The HTTP layer used for the Skills and Files APIs (created on first use).

        Raises:
            SessionStateError: The backend is closed and owned its client.
        """
        if self._api is not None:
            return self._api
        if self._closed:
            raise SessionStateError(
                "the AnthropicBackend is closed; download files inside the session, "
                "or pass api=... and keep that client open"
            )
        if self._owned_api is None:
            self._owned_api = AnthropicAPI(**self._api_options)
        return self._owned_api

    @property
    def files(self) -> FilesClient:
        """A Files API client on :attr:`api`."""
        return FilesClient(self.api, beta=FILES_BETA in self.betas)

    @property
    def skills_api(self) -> SkillsClient:
        """A Skills API client on :attr:`api`."""
        return SkillsClient(self.api, beta=SKILLS_BETA in self.betas)

    async def file_info(self, file: CreatedFile | str) -> FileInfo:
        """The Files API metadata of a file the container created."""
        return await self.files.metadata(_file_id(file))

    async def download(
        self,
        file: CreatedFile | str,
        directory: str | os.PathLike[str],
        *,
        overwrite: bool = False,
    ) -> Path:
        """Download a file the container created into ``directory``; return its path.

        What :meth:`Session.download <conjure_async.Session.download>` calls
        for hosted files (``file`` may also be a ``file_id``). The content
        streams from the Files API into a temporary file that takes the
        file's name (made safe: never a path outside ``directory``) only when
        complete, so a failed download leaves nothing; an existing file is
        replaced only with ``overwrite``.

        Raises:
            FileExistsError: The target exists and ``overwrite`` is false.
            FileNotFoundError: The Files API no longer has the file (404).
            BackendError: The file has no ``file_id`` (this backend did not
                report it), or the Files API failed otherwise (the
                :class:`~conjure_async.APIError` is chained).
        """
        file_id = _file_id(file)
        # the name the session reported (looked up once); the metadata when it was not found
        known = file.name if isinstance(file, CreatedFile) and file.name != file_id else None
        label = known or file_id
        try:
            return await self.files.download(
                file_id, directory, filename=known, overwrite=overwrite
            )
        except NotFoundError as exc:
            raise FileNotFoundError(
                f"{label} ({file_id}) is no longer in the Files API: {exc.message}"
            ) from exc
        except APIError as exc:
            raise BackendError(f"cannot download {label} ({file_id}): {exc}") from exc

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, ctx: BackendContext) -> None:
        """Upload (or reuse) the local skills before the first turn.

        Every local skill is read and checked against the Anthropic API's
        rules (:func:`~conjure_async.anthropic.upload_problems`) before any
        request is sent.

        Raises:
            SkillValidationError: A skill breaks the Anthropic API's rules (a
                leniently loaded one, e.g. a name containing "claude" or a
                description over 1024 characters); every problem is listed,
                naming the skill and the field. Nothing was sent.
            SkillError: A skill is too large to upload (before any upload).
            APIError: The Skills API failed.
        """
        self._log = ctx.logger
        local = [s for s in self.skills if isinstance(s, Skill)]
        if not local:
            return
        prepared = [
            (skill, await anyio.to_thread.run_sync(skill_upload_files, skill)) for skill in local
        ]
        problems = [p for skill, files in prepared for p in upload_problems(skill, files)]
        if problems:
            raise SkillValidationError(problems)
        try:
            index = UploadIndex(self.index_path, self.api.base_url)
            client = self.skills_api
            for skill, files in prepared:
                # one decision (reuse or upload) per content at a time, across tasks
                # and processes sharing the index: the second one reuses the first's upload
                async with index.content_lock(skill.content_hash or f"name-{skill.name}"):
                    uploaded = await upload_or_reuse(client, index, skill, files, self._log)
                    self._uploaded.append(uploaded)
        except BaseException:
            # a session closes only the backends that opened: release what we hold
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """Delete the uploaded skills when ``cleanup`` is set; close an owned client."""
        if self._closed:
            return
        try:
            if self.cleanup and self._uploaded:
                await self._cleanup()
        finally:
            self._closed = True
            if self._owned_api is not None:
                await self._owned_api.aclose()

    async def _cleanup(self) -> None:
        index = UploadIndex(self.index_path, self.api.base_url)
        removed = await delete_uploads(self.skills_api, index, self._uploaded, self._log)
        self._uploaded = [u for u in self._uploaded if u.skill.content_hash not in removed]

    # -- the model's side -------------------------------------------------------------

    def skill_entries(self) -> list[dict[str, str]]:
        """The ``container.skills`` entries (local skills once uploaded)."""
        entries = [s.to_wire() for s in self.skills if isinstance(s, AnthropicSkill)]
        entries.extend(
            {"type": "custom", "skill_id": u.skill_id, "version": u.version} for u in self._uploaded
        )
        return entries

    def skill_listings(self) -> Sequence[SkillListing]:
        """The skills, read in the hosted container (:data:`HOSTED_READ_WITH`).

        They carry no location: the container mounts them under ``/skills/``
        by their folder, which the API chooses.
        """
        listings: list[SkillListing] = []
        for skill in self.skills:
            if isinstance(skill, Skill):
                name, description = skill.name, skill.description
            else:
                name = skill.skill_id
                description = skill.description or PREBUILT_DESCRIPTIONS.get(
                    skill.skill_id, f"Anthropic skill {skill.skill_id}"
                )
            listings.append(SkillListing(name, description, None, read_with=HOSTED_READ_WITH))
        return listings

    def prepare_request(self, request: MessagesRequest) -> MessagesRequest:
        """Add the code execution tool, ``container`` (id and skills) and the betas."""
        tools = list(request.tools or [])
        if not any(
            t.get("type") == self.code_execution_tool or t.get("name") == "code_execution"
            for t in tools
        ):
            tools.append({"type": self.code_execution_tool, "name": "code_execution"})
        skills = self.skill_entries()
        container: str | dict[str, Any] | None
        if skills:
            container = {"skills": skills}
            if self.container_id:
                container = {"id": self.container_id, "skills": skills}
        else:
            container = self.container_id
        return request.model_copy(
            update={
                "tools": tools,
                "container": container,
                "betas": merge_betas(request.betas or [], self.betas),
            }
        )

    def handle_block(self, block: ContentBlock) -> Sequence[Event]:
        """Turn a server tool block into tool and file events, as soon as it is complete."""
        if isinstance(block, ServerToolUseBlock) and block.name in _SERVER_TOOLS:
            self._pending[block.id] = block.name
            return [
                ToolStarted(call_id=block.id, name=block.name, input=block.input, backend=self.kind)
            ]
        if isinstance(block, ServerToolResultBlock) and block.type in _RESULT_TOOLS:
            name = self._pending.pop(block.tool_use_id, _RESULT_TOOLS[block.type])
            return self._finished(block, name)
        return ()

    def handle_response(self, response: MessagesResponse) -> Sequence[Event]:
        """Remember the container the response ran in (sent with the next request)."""
        container = response.container or {}
        if isinstance(container.get("id"), str) and container["id"]:
            self.container_id = container["id"]
        return ()

    def _finished(self, block: ServerToolResultBlock, name: str) -> list[Event]:
        outcome = outcome_of(block.content)
        events: list[Event] = [
            ToolFinished(
                call_id=block.tool_use_id,
                name=name,
                backend=self.kind,
                output=outcome.output,
                is_error=outcome.is_error,
                exit_code=outcome.exit_code,
                stdout=outcome.stdout,
                stderr=outcome.stderr,
            )
        ]
        # Files are reported by after_response, once their names are looked up.
        self._new_files.extend((file_id, block.tool_use_id) for file_id in outcome.file_ids)
        return events

    async def after_response(self) -> Sequence[Event]:
        """Report the files the container created, named from the Files API metadata.

        A lookup that fails (or takes over 10 s) leaves the file named by its id.
        """
        new, self._new_files = self._new_files, []
        events: list[Event] = []
        for file_id, tool_use_id in new:
            name, size, mime = file_id, None, None
            with anyio.move_on_after(10):
                try:
                    info = await self.files.metadata(file_id)
                except ConjureError as exc:
                    self._log.warning("hosted.file_lookup_failed", file_id=file_id, error=str(exc))
                else:
                    name, size, mime = info.filename or file_id, info.size_bytes, info.mime_type
            created = CreatedFile(
                name=name,
                source=self.kind,
                file_id=file_id,
                size_bytes=size,
                mime_type=mime,
                tool_use_id=tool_use_id,
            )
            events.append(FileCreated(file=created))
        return events

    # -- state --------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """The container id (so a restored session keeps its container)."""
        return {"container_id": self.container_id}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the container id."""
        container_id = state.get("container_id")
        self.container_id = container_id if isinstance(container_id, str) else None


def _file_id(file: CreatedFile | str) -> str:
    if isinstance(file, str):
        return file
    if file.file_id is None:
        raise BackendError(f"{file.name} was not created by the hosted backend (it has no file_id)")
    return file.file_id
