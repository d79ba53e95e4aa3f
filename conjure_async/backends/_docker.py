"""The Docker backend: the four skill tools inside one sandbox container per session.

The container is created on the first tool call (or taken from a
:class:`WarmPool`), reused by every turn of the session, and removed (with its
anonymous volumes) when the session closes, also on error or cancellation.
It carries labels (``created-by=conjure_async``, the session id, the owning
``host:pid``) so :func:`~conjure_async.backends._docker_sweep.sweep_orphans`
can remove containers a crashed process left behind.

Inside the container:

* skills are bind-mounted read-only at ``/mnt/skills/<name>``; the prompt
  shows these paths;
* ``/workspace`` is writable (an anonymous volume by default, or a host
  directory, or a tmpfs) and is the working directory;
* ``bash_tool`` runs ``bash -c`` through an exec, in a process group of its
  own that a timeout or cancellation kills from a second exec;
* ``view``/``create_file``/``str_replace`` run a small Python helper fed JSON
  on stdin, with the Local backend's confinement and error results.

Secure defaults (each an option): no network, 512 MiB memory, one CPU,
256 processes, read-only root filesystem with a tmpfs ``/tmp``, user
65534:65534, every capability dropped, ``no-new-privileges``, an init process.
See ``docs/backends/docker.md`` and ``docs/adr/0005-docker-exec-and-kill.md``.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import anyio
from anyio.abc import TaskGroup

from conjure_async._exceptions import (
    BackendError,
    ContainerDiedError,
    DockerError,
    ImageNotFoundError,
)
from conjure_async._logging import Logger, get_logger
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._docker_api import (
    BUILD_HINT,
    CREATED_BY,
    LABEL_CREATED_BY,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_SESSION,
    describe_host,
    docker_client,
    import_aiodocker,
    translate,
)
from conjure_async.backends._docker_image import DEFAULT_IMAGE, build_image, build_offline_image
from conjure_async.backends._docker_scripts import (
    BASH_WRAPPER,
    FILE_HELPER,
    KILLER,
    trailer_marker,
)
from conjure_async.backends._docker_sweep import sweep_orphans
from conjure_async.backends._output import OutputCapture
from conjure_async.events import CreatedFile
from conjure_async.messages import ToolDefinition
from conjure_async.skills import Skill, SkillListing, skill_tool_definitions

__all__ = [
    "DEFAULT_IMAGE",
    "DockerBackend",
    "WarmPool",
    "build_image",
    "build_offline_image",
    "sweep_orphans",
]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_KILL_WAIT = 10.0


def parse_size(value: int | str) -> int:
    """Bytes from an int or a Docker-style size (``"512m"``, ``"1g"``, ``"64MiB"``)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"not a size: {value!r} (use e.g. '512m' or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _partial_marker(data: bytes, marker: bytes) -> int:
    """Length of the longest end of ``data`` that begins ``marker`` (held back)."""
    start = data.find(marker[:1], max(len(data) - len(marker) + 1, 0))
    while start >= 0:
        if marker.startswith(data[start:]):
            return len(data) - start
        start = data.find(marker[:1], start + 1)
    return 0


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class _Spec:
    """Everything that defines a sandbox container (what a warm pool is keyed by)."""

    docker_host: str | None
    config: str
    """The container create body as canonical JSON, without per-session labels."""

    @property
    def key(self) -> str:
        raw = f"{self.docker_host}\n{self.config}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def body(self, session_id: str, *, pool: bool) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.config)
        body["Labels"] = {
            **body.get("Labels", {}),
            LABEL_CREATED_BY: CREATED_BY,
            LABEL_SESSION: session_id,
            LABEL_OWNER: _owner(),
        }
        if pool:
            body["Labels"][LABEL_POOL] = self.key
        return body


async def _create_container(
    client: Any, spec: _Spec, session_id: str, *, image: str, pool: bool = False
) -> str:
    """Create and start a container; remove it again if starting fails. Shielded."""
    with anyio.CancelScope(shield=True):
        try:
            container = await client.containers.create(spec.body(session_id, pool=pool))
        except Exception as exc:
            raise translate(
                exc, host=spec.docker_host, image=image, action="creating the container"
            ) from exc
        try:
            await container.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await container.delete(force=True, v=True)
            raise translate(exc, host=spec.docker_host, action="starting the container") from exc
    return str(container.id)


async def _remove_container(client: Any, container_id: str, log: Logger) -> None:
    """Force-remove a container and its anonymous volumes (shielded, never raises)."""
    aiodocker = import_aiodocker()
    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
        try:
            await client.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                log.warning("docker.remove_failed", container=container_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            log.warning("docker.remove_failed", container=container_id, error=repr(exc))


class WarmPool:
    """Pre-started containers, so a session's first tool call costs one exec.

    Keeps up to ``size`` idle containers for each container configuration
    (image, mounts, limits...) it has been asked for, refilling in the
    background from its own task group. A session takes a container (the
    container is never returned: a used sandbox is removed). Use it as an
    async context manager around the sessions; leaving it drains the pool
    (every idle container is removed)::

        async with WarmPool(size=2) as pool:
            backend = DockerBackend(skills, pool=pool)
            await pool.prewarm(backend)              # optional: fill before first use
            async with Session(backend, model=model) as session:
                await session.chat("...")             # first tool call: about one exec

    A backend with a different configuration (or engine) than the pool's
    containers misses and starts its own container; the pool then starts
    filling for that configuration too (at most ``max_configs`` of them).

    Args:
        size: Idle containers kept per configuration.
        docker_host: The engine (``None``: ``DOCKER_HOST`` or the local socket);
            backends using the pool must use the same.
        max_configs: How many distinct configurations the pool fills.

    Attributes:
        hits: Containers handed out ready.
        misses: Requests that found no ready container.
    """

    def __init__(self, size: int = 2, *, docker_host: str | None = None, max_configs: int = 4):
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.docker_host = docker_host
        self.max_configs = max_configs
        self.hits = 0
        self.misses = 0
        self._ready: dict[str, deque[str]] = {}
        self._specs: dict[str, tuple[_Spec, str]] = {}
        self._starting: dict[str, int] = {}
        self._changed = anyio.Event()
        self._client: Any = None
        self._tg: TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._closed = False
        self._log = get_logger(component="docker.pool")
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        idle = sum(len(q) for q in self._ready.values())
        return f"WarmPool(size={self.size}, idle={idle}, hits={self.hits}, misses={self.misses})"

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(docker_client(self.docker_host))
            self._tg = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        assert self._tg is not None
        assert self._stack is not None
        self._tg.cancel_scope.cancel()
        try:
            await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._stack = None
        # The refill tasks are gone; what is left idle belongs to nobody.
        async with docker_client(self.docker_host) as client:
            for queue in self._ready.values():
                while queue:
                    await _remove_container(client, queue.popleft(), self._log)

    @property
    def idle(self) -> int:
        """Containers ready to be handed out (all configurations)."""
        return sum(len(q) for q in self._ready.values())

    def _register(self, spec: _Spec, image: str) -> bool:
        if self._closed or self._tg is None:
            raise BackendError("the WarmPool is not open: use it as 'async with WarmPool(...)'")
        if spec.docker_host != self.docker_host:
            return False
        if spec.key not in self._specs:
            if len(self._specs) >= self.max_configs:
                return False
            self._specs[spec.key] = (spec, image)
            self._ready[spec.key] = deque()
            self._starting[spec.key] = 0
        self._refill(spec.key)
        return True

    def _refill(self, key: str) -> None:
        assert self._tg is not None
        missing = self.size - len(self._ready[key]) - self._starting[key]
        for _ in range(max(missing, 0)):
            self._starting[key] += 1
            self._tg.start_soon(self._start_one, key)

    async def _start_one(self, key: str) -> None:
        spec, image = self._specs[key]
        try:
            container_id = await _create_container(
                self._client, spec, "pool", image=image, pool=True
            )
        except DockerError as exc:
            self._failure = exc
            self._log.warning("docker.pool_start_failed", error=str(exc))
            return
        finally:
            self._starting[key] -= 1
            self._changed.set()
            self._changed = anyio.Event()
        if self._closed:
            await _remove_container(self._client, container_id, self._log)
            return
        self._ready[key].append(container_id)

    async def prewarm(self, backend: DockerBackend, *, wait: bool = True) -> None:
        """Start filling the pool for ``backend``'s configuration.

        Args:
            backend: A backend configured as the sessions will be.
            wait: Return only when ``size`` containers are ready.

        Raises:
            BackendError: the pool is not open, or the backend uses another engine.
            DockerError: starting a container failed.
        """
        spec = backend.spec
        if not self._register(spec, backend.image):
            raise BackendError(
                f"this pool fills for engine {self.docker_host!r} and at most "
                f"{self.max_configs} configurations"
            )
        while wait and len(self._ready[spec.key]) < self.size:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            await self._changed.wait()

    async def acquire(self, backend: DockerBackend) -> str | None:
        """Take a ready container for ``backend``'s configuration, or ``None`` on a miss.

        Either way the pool refills in the background.
        """
        spec = backend.spec
        if not self._register(spec, backend.image):
            self.misses += 1
            return None
        queue = self._ready[spec.key]
        if queue:
            self.hits += 1
            container_id = queue.popleft()
            self._refill(spec.key)
            return container_id
        self.misses += 1
        return None


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
            container; default), ``"tmpfs"`` (in memory, counted against
            ``memory``), or a host directory to bind-mount (it must be writable
            by ``user``; it stays after the session).
        workdir: Where the workspace is mounted in the container.
        skills_dir: Where the skills are mounted in the container.
        network: Docker network mode; ``"none"`` (default) leaves only loopback.
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
        only: Offer only these skill tools.
        exclude: Offer every skill tool but these.
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
        only: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        self.skills = list(skills)
        self.image = image
        self.docker_host = docker_host
        self.ssl_context = ssl_context
        self.pool = pool
        self.workdir = workdir.rstrip("/") or "/"
        self.skills_dir = skills_dir.rstrip("/")
        self.network = network
        self.memory = parse_size(memory) if memory is not None else None
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.read_only = read_only
        self.tmpfs = dict(tmpfs) if tmpfs is not None else {"/tmp": "rw,nosuid,nodev,size=256m"}  # noqa: S108
        self.user = user
        self.output_limit = output_limit
        self.track_files = track_files
        self._definitions = skill_tool_definitions(only=only, exclude=exclude)
        self._log = get_logger(backend="docker")
        if pool is not None and pool.docker_host != docker_host:
            raise ValueError("the pool and the backend must use the same docker_host")

        binds = [f"{s.path.resolve()}:{self.skills_dir}/{s.name}:ro" for s in self.skills]
        volumes: dict[str, Any] = {}
        tmpfs_mounts = dict(self.tmpfs)
        self.workspace: str
        if workspace == "volume":
            self.workspace = "volume"
            volumes[self.workdir] = {}
        elif workspace == "tmpfs":
            self.workspace = "tmpfs"
            tmpfs_mounts[self.workdir] = "rw,nosuid,nodev,mode=1777"
        else:
            self.workspace = str(Path(workspace).resolve())
            binds.append(f"{self.workspace}:{self.workdir}:rw")
        hc: dict[str, Any] = {
            "NetworkMode": network,
            "ReadonlyRootfs": read_only,
            "Tmpfs": tmpfs_mounts,
            "CapDrop": list(cap_drop),
            "CapAdd": list(cap_add),
            "SecurityOpt": ["no-new-privileges"] if no_new_privileges else [],
            "Init": init,
            "Binds": binds,
        }
        if self.memory is not None:
            hc["Memory"] = self.memory
            hc["MemorySwap"] = self.memory
        if cpus is not None:
            hc["NanoCpus"] = int(cpus * 1e9)
        if pids_limit is not None:
            hc["PidsLimit"] = pids_limit
        hc.update(host_config or {})
        environment = {"HOME": self.workdir, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        environment.update(env or {})
        config = {
            "Image": image,
            "Cmd": ["sleep", "infinity"],
            "User": user,
            "WorkingDir": self.workdir,
            "Env": [f"{k}={v}" for k, v in sorted(environment.items())],
            "Labels": dict(labels or {}),
            "Volumes": volumes,
            "NetworkDisabled": network == "none",
            "HostConfig": hc,
        }
        self.spec = _Spec(docker_host, json.dumps(config, sort_keys=True))
        """The container configuration (what a warm pool matches on)."""
        self._readonly_roots = [self.skills_dir]
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._session_id: str | None = None
        self._container_id: str | None = None
        self._container_lock = anyio.Lock()
        self.from_pool = False
        """Whether the session's container came ready from the warm pool."""
        self._last_container_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"DockerBackend(image={self.image!r}, skills={[s.name for s in self.skills]}, "
            f"container={self._container_id})"
        )

    # -- lifecycle -----------------------------------------------------------

    @property
    def container_id(self) -> str | None:
        """The session's container id, once a tool call created (or took) it."""
        return self._container_id

    async def open(self, ctx: BackendContext) -> None:
        """Connect to the engine and check that the image exists (no container yet).

        Raises:
            DockerUnavailableError: the engine cannot be reached.
            ImageNotFoundError: the image is not on the engine.
        """
        if self._stack is not None:
            raise BackendError("this DockerBackend is already in use by another session")
        self._log = ctx.logger
        self._session_id = ctx.session_id
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                docker_client(self.docker_host, ssl_context=self.ssl_context)
            )
            await self._check_image()
        except BaseException:
            await stack.aclose()
            self._client = None
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
            if self._container_id is not None and self._client is not None:
                await _remove_container(self._client, self._container_id, self._log)
            self._last_container_id = self._container_id
            self._container_id = None
            if self._stack is not None:
                await self._stack.aclose()
            self._stack = None
            self._client = None

    async def _container(self) -> str:
        if self._client is None:
            raise BackendError("DockerBackend is not open")
        async with self._container_lock:
            if self._container_id is None:
                taken = await self.pool.acquire(self) if self.pool is not None else None
                self.from_pool = taken is not None
                if taken is None:
                    taken = await _create_container(
                        self._client, self.spec, self._session_id or "", image=self.image
                    )
                self._container_id = taken
                self._log.debug("docker.container", container=taken, from_pool=self.from_pool)
            return self._container_id

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
        """Where commands run, as the container sees it."""
        network = "no network access" if self.network == "none" else f"network {self.network!r}"
        return (
            f"Your tools run inside a Linux container ({network}). Your working directory is "
            f"{self.workdir}: commands run there; create files there. Skill folders under "
            f"{self.skills_dir} are read-only."
        )

    def dump_state(self) -> dict[str, Any]:
        """The image and the last container id, for diagnostics only.

        A restored session never reattaches to that container: containers are
        removed when their session closes, so the restored session starts a
        fresh one on its first tool call (a host-directory workspace keeps the
        files).
        """
        return {"image": self.image, "container_id": self._container_id or self._last_container_id}

    def load_state(self, state: dict[str, Any]) -> None:
        """Accept a dumped state; nothing is reattached (see :meth:`dump_state`)."""
        del state

    # -- tools ---------------------------------------------------------------

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run one of the four skill tools in the session's container."""
        del ctx
        if call.name == "bash_tool":
            async for event in self._bash(str(call.input.get("command", ""))):
                yield event
            return
        if call.name not in ("view", "create_file", "str_replace"):
            yield ToolResult(output=f"DockerBackend has no tool {call.name!r}", is_error=True)
            return
        reply = await self._helper(call.name, call.input)
        if not reply.get("ok"):
            yield ToolResult(output=str(reply.get("output", "failed")), is_error=True)
            return
        files: tuple[CreatedFile, ...] = ()
        if isinstance(reply.get("file"), dict):
            path = str(reply["file"]["path"])
            files = (
                CreatedFile(
                    name=path.rsplit("/", 1)[-1],
                    source="docker",
                    path=path,
                    size_bytes=int(reply["file"]["size"]),
                    tool_use_id=call.id,
                ),
            )
        capture = OutputCapture(self.output_limit)
        capture.add(str(reply.get("output", "")))
        yield ToolResult(output=capture.text(), files=files)

    async def _exec(self, cmd: list[str], *, stdin: bool = False) -> Any:
        """Create an exec; a stopped container becomes :class:`ContainerDiedError`."""
        container_id = await self._container()
        aiodocker = import_aiodocker()
        container = self._client.containers.container(container_id)
        try:
            return await container.exec(cmd, stdout=True, stderr=True, stdin=stdin)
        except aiodocker.DockerError as exc:
            if exc.status in (404, 409):
                raise await self._died(container_id) from exc
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

    async def _kill(self, token: str) -> None:
        """Kill the process group of a running command (shielded, bounded)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_KILL_WAIT):
            try:
                killer = await self._exec(["bash", "-c", KILLER, "conjure-kill", token])
                await killer.start(detach=True)
                for _ in range(200):  # wait until the kill exec has run
                    info = await killer.inspect()
                    if not info.get("Running") and info.get("ExitCode") is not None:
                        break
                    await anyio.sleep(0.01)
            except Exception as exc:  # noqa: BLE001 - the container may be gone already
                self._log.warning("docker.kill_failed", token=token, error=repr(exc))

    async def _bash(self, command: str) -> AsyncIterator[ToolEvent]:
        if not command.strip():
            yield ToolResult(output="bash_tool needs a non-empty command", is_error=True)
            return
        token = uuid.uuid4().hex
        scan = self.workdir if self.track_files else ""
        execution = await self._exec(
            ["bash", "-c", BASH_WRAPPER, "conjure-bash", token, command, scan]
        )
        marker = trailer_marker(token)
        capture = OutputCapture(self.output_limit)
        decoders = {
            1: codecs.getincrementaldecoder("utf-8")(errors="replace"),
            2: codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        pending = b""
        trailer: bytearray | None = None
        finished = False
        try:
            stream = execution.start(detach=False)
            try:
                async with stream:
                    while (message := await stream.read_out()) is not None:
                        data: bytes = message.data
                        if message.stream == 2:
                            text = capture.add(decoders[2].decode(data))
                            if text:
                                yield ToolChunk(text, "stderr")
                            continue
                        if trailer is not None:
                            trailer += data
                            continue
                        pending += data
                        index = pending.find(marker)
                        if index >= 0:
                            trailer = bytearray(pending[index + len(marker) :])
                            data, pending = pending[:index], b""
                        else:
                            keep = _partial_marker(pending, marker)
                            data, pending = (
                                pending[: len(pending) - keep],
                                pending[len(pending) - keep :],
                            )
                        text = capture.add(decoders[1].decode(data))
                        if text:
                            yield ToolChunk(text)
            except DockerError:
                raise
            except Exception as exc:
                raise translate(exc, host=self.docker_host, action="running a command") from exc
            finished = True
        finally:
            if not finished:
                await self._kill(token)
        capture.add(decoders[1].decode(pending, final=True) + decoders[2].decode(b"", final=True))
        code, oom, pids, files = await self._parse_trailer(execution, trailer)
        output = capture.text()
        notes = []
        if oom:
            memory = f" ({self.memory // 1024**2} MiB)" if self.memory else ""
            notes.append(f"[killed: the container ran out of memory{memory}]")
        if pids:
            notes.append(f"[the container's process limit ({self.pids_limit}) was reached]")
        if code != 0:
            notes.append(f"[exit code {code}]")
        output = "\n".join([output, *notes]) if output and notes else output or "\n".join(notes)
        yield ToolResult(
            output=output or "(no output)",
            is_error=code != 0,
            exit_code=code,
            files=files,
        )

    async def _parse_trailer(
        self, execution: Any, trailer: bytearray | None
    ) -> tuple[int, bool, bool, tuple[CreatedFile, ...]]:
        if trailer is None:  # the wrapper itself died: ask the engine
            info = await execution.inspect()
            code = info.get("ExitCode")
            if code is None:
                raise await self._died(await self._container())
            return int(code), False, False, ()
        head, _, rest = bytes(trailer).partition(b"\x00")
        fields = head.decode("ascii", "replace").split()
        code, oom, pids = (int(x) for x in [*fields, "0", "0", "0"][:3])
        files = tuple(
            CreatedFile(name=p.rsplit("/", 1)[-1], source="docker", path=p)
            for raw in rest.split(b"\x00")
            if (p := raw.decode("utf-8", "replace")).startswith(self.workdir + "/")
        )
        return code, oom > 0, pids > 0, files

    async def _helper(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run the file helper with one request; return its JSON reply."""
        request = json.dumps(
            {
                "op": op,
                "args": args,
                "workspace": self.workdir,
                "readonly_roots": self._readonly_roots,
                "limit": self.output_limit,
            }
        ).encode()
        execution = await self._exec(["python3", "-c", FILE_HELPER], stdin=True)
        out = bytearray()
        err = bytearray()
        try:
            async with execution.start(detach=False) as stream:
                await stream.write_in(b"%d\n" % len(request) + request)
                while (message := await stream.read_out()) is not None:
                    (err if message.stream == 2 else out).extend(message.data)
            info = await execution.inspect()
        except DockerError:
            raise
        except Exception as exc:
            raise translate(exc, host=self.docker_host, action=f"running {op}") from exc
        try:
            reply = json.loads(out.decode("utf-8", "replace"))
        except ValueError:
            code = info.get("ExitCode")
            if code == 127:
                raise DockerError(
                    f"the image {self.image!r} has no python3, which the file tools need"
                ) from None
            if code is None:
                raise await self._died(await self._container()) from None
            detail = err.decode("utf-8", "replace")[-2000:]
            raise DockerError(f"the file helper failed (exit code {code}): {detail}") from None
        if not isinstance(reply, dict):
            raise DockerError("the file helper answered something unusable")
        return reply
