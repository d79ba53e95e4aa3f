"""The Docker backend: the four skill tools inside one sandbox container per session.

The container is created on the first tool call (or taken from a
:class:`WarmPool`), reused by every turn, and removed with its anonymous
volumes when the session closes, also on error or cancellation (unless
``keep_container``: durable sessions reattach by id, :mod:`._durable`). Its
labels let :func:`~conjure_async.backends.docker._sweep.sweep_orphans` remove
what a crashed process left behind.

Inside: skills bind-mounted read-only at ``/mnt/skills/<name>``; a writable,
checked ``/workspace`` as the working directory (see :mod:`._container`);
``bash_tool`` runs each command in a ``bash`` and process group of its own
whose every process is killed, verified, when it ends, times out or is
cancelled (see :mod:`._scripts`); the file tools run a small Python helper
with the Local backend's confinement; a tmpfs ``/run/conjure`` holds the
backend's markers. With ``egress=EgressPolicy(...)`` the network stays
``none``: the main process forwards ``127.0.0.1:3128`` (``HTTP(S)_PROXY``) to
the session proxy's unix socket in a folder mounted at ``/run/egress`` (see
``docs/network-policy.md``).

Secure defaults (each an option; ``docs/backends/docker.md``): no network,
512 MiB memory, one CPU, 256 processes, read-only root with a tmpfs ``/tmp``,
user 65534:65534, no capabilities, ``no-new-privileges``, an init process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio

from conjure_async._exceptions import (
    BackendError,
    ContainerDiedError,
    DockerError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from conjure_async._logging import get_logger
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._output import OutputCapture
from conjure_async.backends.docker._api import (
    BUILD_HINT,
    describe_host,
    docker_client,
    import_aiodocker,
    resolve_host,
    translate,
)
from conjure_async.backends.docker._bash import run_command
from conjure_async.backends.docker._config import ContainerConfig, parse_size
from conjure_async.backends.docker._container import Sandbox, create_container, remove_container
from conjure_async.backends.docker._durable import SESSION_OWNER, reattach, recorded
from conjure_async.backends.docker._files import download, file_request
from conjure_async.backends.docker._image import DEFAULT_IMAGE
from conjure_async.backends.docker._pool import WarmPool
from conjure_async.egress._policy import EgressPolicy
from conjure_async.egress._runtime import EgressRuntime, with_decisions
from conjure_async.events import CreatedFile
from conjure_async.messages import ToolDefinition
from conjure_async.skills import Skill, SkillListing, skill_tool_definitions
from conjure_async.skills._prompt import network_note

__all__ = ["DockerBackend"]


class DockerBackend(Backend):
    """Runs the skill tools inside a sandbox container, one per session.

    Args:
        skills: The skills to offer; each is bind-mounted read-only at
            ``{skills_dir}/<name>`` (the path must exist on the engine's host).
        image: The sandbox image (needs ``bash`` and ``python3``; see
            :func:`build_image` / :func:`build_offline_image`).
        docker_host: The engine: ``unix:///path/docker.sock``, ``tcp://host:2376``
            (TLS via ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` or ``ssl_context``);
            ``None``: ``DOCKER_HOST``, else ``/var/run/docker.sock``.
        ssl_context: TLS settings for a TCP engine.
        pool: A :class:`WarmPool` to take the container from.
        workspace: ``"volume"`` (an anonymous volume removed with the
            container; default; made writable by ``user`` when the image
            lacks the directory), ``"tmpfs"`` (in memory, counted against
            ``memory``), or a host directory to bind-mount (it must be
            writable by ``user``; it stays after the session). Checked when
            the container starts: :class:`DockerError` if ``user`` cannot
            write it.
        workdir: Where the workspace is mounted in the container.
        skills_dir: Where the skills are mounted in the container.
        network: Docker network mode; ``"none"`` (default) leaves only loopback.
        egress: A network policy: the container keeps network ``"none"`` and
            reaches only the policy's destinations, through the session's
            proxy (needs the engine on this machine, and ``python3`` in the
            image for the forwarder). See :class:`EgressPolicy`.
        memory: Memory limit (``"512m"``, bytes, or ``None`` for none); swap is
            not allowed beyond it.
        cpus: CPU limit (``1.0`` = one core; ``None`` for none).
        pids_limit: Process limit (``None`` for none).
        read_only: Read-only root filesystem.
        tmpfs: tmpfs mounts (path to mount options); ``/tmp`` by default.
        user: The user commands run as (``"65534:65534"``, i.e. nobody).
        cap_drop: Capabilities dropped (``("ALL",)``).
        cap_add: Capabilities added back.
        no_new_privileges: Forbid privilege gain through setuid binaries.
        init: Run an init process (``docker-init``) as PID 1 to reap zombies.
        env: Environment variables of the container.
        host_config: Raw ``HostConfig`` entries merged last (an escape hatch).
        labels: Extra container labels.
        output_limit: Characters of output kept per tool call (head and tail).
        track_files: Report files that ``bash_tool`` created or changed under
            the workspace (as :class:`CreatedFile` events).
        download_limit: The largest file :meth:`download` copies out
            (``"1g"``, bytes).
        only: Offer only these skill tools.
        exclude: Offer every skill tool but these.
        keep_container: The container outlives this instance (durable
            sessions): closing leaves it running, :meth:`dump_state` holds its
            id and :meth:`load_state` reattaches to it; :meth:`remove_container`
            removes it. It is labelled with its session, not its process.

    The container options are checked once and kept as one frozen value,
    :attr:`config`; the option attributes (:attr:`memory`, :attr:`workdir`...)
    read it.

    Raises:
        ValueError: ``memory`` or ``download_limit`` is not a size,
            ``pool`` uses another engine, ``egress`` comes with a network
            or with ``keep_container``.
        TypeError: ``host_config`` holds a value JSON cannot carry.
    """

    kind: ClassVar[str] = "docker"

    def __init__(
        self,
        skills: Iterable[Skill] = (),
        *,
        image: str = DEFAULT_IMAGE,
        docker_host: str | None = None,
        ssl_context: Any = None,
        pool: WarmPool | None = None,
        workspace: Literal["volume", "tmpfs"] | str | os.PathLike[str] = "volume",
        workdir: str = "/workspace",
        skills_dir: str = "/mnt/skills",
        network: str = "none",
        egress: EgressPolicy | None = None,
        memory: int | str | None = "512m",
        cpus: float | None = 1.0,
        pids_limit: int | None = 256,
        read_only: bool = True,
        tmpfs: Mapping[str, str] | None = None,
        user: str = "65534:65534",
        cap_drop: Sequence[str] = ("ALL",),
        cap_add: Sequence[str] = (),
        no_new_privileges: bool = True,
        init: bool = True,
        env: Mapping[str, str] | None = None,
        host_config: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        output_limit: int = 30_000,
        track_files: bool = True,
        download_limit: int | str = "1g",
        only: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        keep_container: bool = False,
    ) -> None:
        self.skills = list(skills)
        self.config = ContainerConfig.from_options(
            self.skills,
            image=image,
            docker_host=docker_host,
            workspace=workspace,
            workdir=workdir,
            skills_dir=skills_dir,
            network=network,
            memory=memory,
            cpus=cpus,
            pids_limit=pids_limit,
            read_only=read_only,
            tmpfs=tmpfs,
            user=user,
            cap_drop=cap_drop,
            cap_add=cap_add,
            no_new_privileges=no_new_privileges,
            init=init,
            env=env,
            host_config=host_config,
            labels=labels,
            egress=egress,
        )
        """The container configuration, one frozen value (what a warm pool matches on)."""
        if pool is not None and pool.docker_host != docker_host:
            raise ValueError("the pool and the backend must use the same docker_host")
        if keep_container and egress is not None:  # the proxy lives with one process
            raise ValueError("keep_container cannot be combined with an egress policy")
        self.ssl_context = ssl_context
        self.pool = pool
        self.output_limit = output_limit
        self.track_files = track_files
        self.download_limit = parse_size(download_limit)
        self._definitions = skill_tool_definitions(only=only, exclude=exclude)
        self._log = get_logger(backend="docker")
        self._readonly_roots = [self.skills_dir]
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._session_id: str | None = None
        self._sandbox: Sandbox | None = None
        self._container_lock = anyio.Lock()
        self.from_pool = False
        """Whether the session's container came ready from the warm pool."""
        self._last_container_id: str | None = None
        self._egress: EgressRuntime | None = None
        self.keep_container = keep_container
        self._kept: dict[str, Any] | None = None  # a kept container to reattach to

    def __repr__(self) -> str:
        return (
            f"DockerBackend(image={self.image!r}, skills={[s.name for s in self.skills]}, "
            f"container={self.container_id})"
        )

    # -- the container configuration, read-only (it is self.config) -----------

    @property
    def image(self) -> str:
        """The sandbox image."""
        return self.config.image

    @property
    def docker_host(self) -> str | None:
        """The engine (``None``: ``DOCKER_HOST`` or the local socket)."""
        return self.config.docker_host

    @property
    def workspace(self) -> str:
        """``"volume"``, ``"tmpfs"``, or the (resolved) host directory mounted at the workdir."""
        return self.config.workspace

    @property
    def workdir(self) -> str:
        """Where the workspace is mounted in the container."""
        return self.config.workdir

    @property
    def skills_dir(self) -> str:
        """Where the skills are mounted in the container."""
        return self.config.skills_dir

    @property
    def network(self) -> str:
        """The Docker network mode."""
        return self.config.network

    @property
    def egress(self) -> EgressPolicy | None:
        """The network policy (``None``: the ``network`` mode alone)."""
        return self.config.egress

    @property
    def memory(self) -> int | None:
        """The memory limit in bytes (``None``: none)."""
        return self.config.memory

    @property
    def cpus(self) -> float | None:
        """The CPU limit (``None``: none)."""
        return self.config.cpus

    @property
    def pids_limit(self) -> int | None:
        """The process limit (``None``: none)."""
        return self.config.pids_limit

    @property
    def read_only(self) -> bool:
        """Whether the root filesystem is read-only."""
        return self.config.read_only

    @property
    def tmpfs(self) -> dict[str, str]:
        """The tmpfs mounts (path to mount options), without the workspace's."""
        return dict(self.config.tmpfs)

    @property
    def user(self) -> str:
        """The user commands run as."""
        return self.config.user

    # -- lifecycle -----------------------------------------------------------

    @property
    def container_id(self) -> str | None:
        """The session's container id, once a tool call created (or took) it."""
        return self._sandbox.id if self._sandbox is not None else None

    async def open(self, ctx: BackendContext) -> None:
        """Connect to the engine and check that the image exists (no container yet).

        The container, and with it the workspace, is checked when the first
        tool call starts it (or when a warm pool does).

        With an egress policy the session's proxy starts here (in the
        session's task group); the engine must be on this machine.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
            ImageNotFoundError: the image is not on the engine.
            SandboxUnavailableError: an egress policy with an engine on
                another machine (it could not see the proxy's socket).
        """
        if self._stack is not None:
            raise BackendError("this DockerBackend is already in use by another session")
        self._log = ctx.logger
        self._session_id = ctx.session_id
        policy = self.config.egress
        if policy is not None:
            engine = resolve_host(self.docker_host) or ""
            if not engine.startswith("unix://"):
                raise SandboxUnavailableError(
                    f"an egress policy needs the Docker engine on this machine (the proxy's "
                    f"unix socket is bind-mounted into the container), but the engine is "
                    f"{describe_host(self.docker_host)}; the network stays closed. For a "
                    "remote engine see 'Remote engines' in the network policy documentation "
                    "(a sidecar proxy container)"
                )
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                docker_client(self.docker_host, ssl_context=self.ssl_context)
            )
            await self._check_image()
            if policy is not None:
                runtime = EgressRuntime(policy, logger=ctx.logger)
                stack.push_async_callback(runtime.aclose)
                await runtime.start(ctx.task_group)
                self._egress = runtime
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            self._client = None
            self._egress = None
            raise
        self._stack = stack

    async def _check_image(self) -> None:
        aiodocker = import_aiodocker()
        try:
            await self._client.images.inspect(self.image)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                raise ImageNotFoundError(
                    f"the sandbox image {self.image!r} is not on the engine at "
                    f"{describe_host(self.docker_host)}; {BUILD_HINT}"
                ) from exc
            raise translate(exc, host=self.docker_host, action="inspecting the image") from exc

    async def aclose(self) -> None:
        """Remove the session's container (and its volumes) and close the client."""
        with anyio.CancelScope(shield=True):
            if self._sandbox is not None and self._client is not None and not self.keep_container:
                await remove_container(
                    self._client,
                    self._sandbox.id,
                    self._log,
                    egress_folder=self._sandbox.egress_folder,
                )
            self._last_container_id = self.container_id
            if self.keep_container and self._sandbox is not None:  # still reattachable
                self._kept = {"container_id": self._sandbox.id, "spare": self._sandbox.spare}
            self._sandbox = None
            if self._stack is not None:
                await self._stack.aclose()  # the egress proxy too
            self._stack = None
            self._client = None
            self._egress = None

    async def _container(self) -> Sandbox:
        """The session's container, created (or taken from the pool) on first use."""
        if self._client is None:
            raise BackendError("DockerBackend is not open")
        async with self._container_lock:
            if self._sandbox is None and self._kept is not None:
                self._sandbox = await reattach(
                    self._client, self._kept, self.config, self.docker_host
                )
            if self._sandbox is None:
                taken = await self.pool.acquire(self) if self.pool is not None else None
                self.from_pool = taken is not None
                if taken is None:
                    taken = await create_container(
                        self._client,
                        self.config,
                        self._session_id or "",
                        owner=f"{SESSION_OWNER}{self._session_id}" if self.keep_container else None,
                    )
                self._sandbox = taken
                if self._egress is not None and taken.egress_folder and taken.egress_socket:
                    await self._egress.serve(Path(taken.egress_folder), taken.egress_socket)
                self._log.debug("docker.container", container=taken.id, from_pool=self.from_pool)
            return self._sandbox

    # -- what the model sees -------------------------------------------------

    def skill_listings(self) -> Sequence[SkillListing]:
        """Skills with their paths inside the container."""
        return [
            SkillListing(s.name, s.description, f"{self.skills_dir}/{s.name}/{s.skill_md.name}")
            for s in self.skills
        ]

    def tools(self) -> Sequence[ToolDefinition]:
        """The four skill tools (or the chosen subset)."""
        return self._definitions

    def prompt_notes(self) -> str | None:
        """Where commands run, as the container sees it; which hosts it may reach."""
        network = "no network access" if self.network == "none" else f"network {self.network!r}"
        if self.egress is not None:
            network = "no direct network access"
        notes = (
            f"Your tools run inside a Linux container ({network}). Your working directory is "
            f"{self.workdir}: commands run there; create files there. Skill folders under "
            f"{self.skills_dir} are read-only."
        )
        if self.egress is not None:
            notes = f"{notes} {network_note(self.egress.destinations())}"
        return notes

    def dump_state(self) -> dict[str, Any]:
        """The image, the engine and the container id: reattached only with ``keep_container``.

        Otherwise the id is for diagnostics: a restored session starts a fresh
        container on its first tool call (a host-directory workspace keeps the files).
        """
        state = {"image": self.image, "container_id": self.container_id or self._last_container_id}
        if self.keep_container:
            kept = self._sandbox
            state["docker_host"] = self.docker_host
            state["spare"] = kept.spare if kept is not None else (self._kept or {}).get("spare")
            if kept is None and self._kept is not None:
                state["container_id"] = self._kept["container_id"]
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """With ``keep_container``, reattach to the state's container on first use."""
        if self.keep_container and state.get("container_id"):
            self._kept = dict(state)

    async def remove_container(self) -> None:
        """Remove the session's container now (with ``keep_container``, the only way)."""
        container_id = self.container_id or (self._kept or {}).get("container_id")
        if container_id is not None and self._client is not None:
            await remove_container(self._client, str(container_id), self._log)
        self._sandbox = None
        self._kept = None

    # -- files ---------------------------------------------------------------

    async def download(
        self,
        file: CreatedFile,
        directory: Path,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Copy a file this backend reported out of the session's container.

        Only regular files inside the workspace are handed out (a symlink, a
        FIFO, anything resolving outside is refused), up to
        ``download_limit`` bytes; see :mod:`._files`.

        Raises:
            FileExistsError: The target exists and ``overwrite`` is false.
            FileNotFoundError: The file is gone (or the session has no
                container: none was started, or it was removed).
            DockerError: The file was refused, or the engine failed.
        """
        if self._client is None:
            raise BackendError("DockerBackend is not open")
        sandbox = self._sandbox
        if sandbox is None:
            raise FileNotFoundError(
                f"{file.path or file.name} is not available: this session has no container "
                "(files live as long as the session's container)"
            )

        async def exec_in_container(cmd: list[str]) -> Any:
            return await self._exec(sandbox, cmd)

        return await download(
            exec_in_container,
            file,
            directory,
            workdir=self.workdir,
            limit=self.download_limit,
            overwrite=overwrite,
            host=self.docker_host,
        )

    # -- tools ---------------------------------------------------------------

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run one of the four skill tools in the session's container."""
        if call.name == "bash_tool":
            events = self._bash(call.input.get("command", ""), call.id)
            if self._egress is not None:
                events = with_decisions(events, self._egress, call.id)
            if self.keep_container and ctx.idempotency_key is not None:  # durable: at most once
                events = recorded(events, ctx.idempotency_key, self._client, self._container)
            async for event in events:
                yield event
            return
        if call.name not in ("view", "create_file", "str_replace"):
            yield ToolResult(output=f"DockerBackend has no tool {call.name!r}", is_error=True)
            return
        reply = await self._helper(call.name, call.input)
        if not reply.get("ok"):
            yield ToolResult(output=str(reply.get("output", "failed")), is_error=True)
            return
        entries = reply.get("files")
        if not isinstance(entries, list):
            entries = [reply["file"]] if isinstance(reply.get("file"), dict) else []
        files = tuple(
            self._created(str(entry["path"]), entry.get("size", entry.get("size_bytes")), call.id)
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("path"), str)
        )
        capture = OutputCapture(self.output_limit)
        capture.add(str(reply.get("output", "")))
        yield ToolResult(output=capture.text(), files=files)

    @staticmethod
    def _created(path: str, size: Any, call_id: str) -> CreatedFile:
        return CreatedFile(
            name=path.rsplit("/", 1)[-1],
            source="docker",
            path=path,
            size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
            tool_use_id=call_id,
        )

    async def _exec(self, sandbox: Sandbox, cmd: list[str], *, stdin: bool = False) -> Any:
        """Create an exec; a stopped container becomes :class:`ContainerDiedError`."""
        aiodocker = import_aiodocker()
        container = self._client.containers.container(sandbox.id)
        try:
            return await container.exec(cmd, stdout=True, stderr=True, stdin=stdin)
        except aiodocker.DockerError as exc:
            if exc.status in (404, 409):
                raise await self._died(sandbox.id) from exc
            raise translate(exc, host=self.docker_host, action="creating an exec") from exc
        except Exception as exc:
            raise translate(exc, host=self.docker_host, action="creating an exec") from exc

    async def _died(self, container_id: str) -> DockerError:
        """Describe why the container is gone (OOM-killed, exited, removed)."""
        aiodocker = import_aiodocker()
        try:
            info = await self._client.containers.container(container_id).show()
        except aiodocker.DockerError:
            return ContainerDiedError(f"the session's container {container_id[:12]} was removed")
        state = info.get("State", {})
        if state.get("Running"):
            return DockerError(
                f"the engine refused an exec in running container {container_id[:12]}"
            )
        oom = bool(state.get("OOMKilled"))
        code = state.get("ExitCode")
        reason = "was killed by the OOM killer" if oom else f"exited with code {code}"
        return ContainerDiedError(
            f"the session's container {container_id[:12]} {reason}", oom_killed=oom, exit_code=code
        )

    async def _bash(self, command: Any, call_id: str) -> AsyncIterator[ToolEvent]:
        if not isinstance(command, str) or not command.strip():
            yield ToolResult(output="bash_tool needs a non-empty command", is_error=True)
            return
        if "\x00" in command:
            yield ToolResult(
                output="bash_tool's command must not contain NUL characters", is_error=True
            )
            return
        sandbox = await self._container()
        async for event in run_command(self, sandbox, command, call_id):
            yield event

    async def _helper(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run the file helper with one request; return its JSON reply."""
        return await file_request(self, await self._container(), op, args)
