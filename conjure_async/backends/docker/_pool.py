"""A warm pool of started, prepared sandbox containers for the Docker backend."""

from __future__ import annotations

import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import TaskGroup

from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import BackendError, DockerError
from conjure_async._logging import get_logger
from conjure_async.backends.docker._api import docker_client
from conjure_async.backends.docker._config import ContainerConfig
from conjure_async.backends.docker._container import Sandbox, create_container, remove_container

if TYPE_CHECKING:
    from conjure_async.backends.docker._backend import DockerBackend

__all__ = ["WarmPool"]


class WarmPool(AsyncCloseable):
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

    Containers are kept per configuration, egress policy included (its
    fingerprint: hosts, ports, header names; the session's proxy attaches when
    the container is taken). A backend with a different configuration (or
    engine) than the pool's containers misses and starts its own container; the pool then starts
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
        self._ready: dict[str, deque[Sandbox]] = {}
        self._configs: dict[str, ContainerConfig] = {}
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

    async def aclose(self) -> None:
        """Stop refilling and remove every idle container (idempotent)."""
        self._closed = True
        stack, self._stack = self._stack, None
        if stack is None:
            return
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            await stack.aclose()
        finally:
            # The refill tasks are gone; what is left idle belongs to nobody.
            with anyio.CancelScope(shield=True):
                async with docker_client(self.docker_host) as client:
                    for queue in self._ready.values():
                        while queue:
                            idle = queue.popleft()
                            await remove_container(
                                client, idle.id, self._log, egress_folder=idle.egress_folder
                            )

    @property
    def idle(self) -> int:
        """Containers ready to be handed out (all configurations)."""
        return sum(len(q) for q in self._ready.values())

    def _register(self, config: ContainerConfig, key: str) -> bool:
        if self._closed or self._tg is None:
            raise BackendError("the WarmPool is not open: use it as 'async with WarmPool(...)'")
        if config.docker_host != self.docker_host:
            return False
        if key not in self._configs:
            if len(self._configs) >= self.max_configs:
                return False
            self._configs[key] = config
            self._ready[key] = deque()
            self._starting[key] = 0
        self._refill(key)
        return True

    def _refill(self, key: str) -> None:
        assert self._tg is not None
        missing = self.size - len(self._ready[key]) - self._starting[key]
        for _ in range(max(missing, 0)):
            self._starting[key] += 1
            self._tg.start_soon(self._start_one, key)

    async def _start_one(self, key: str) -> None:
        try:
            sandbox = await create_container(self._client, self._configs[key], "pool", pool=True)
        except DockerError as exc:
            self._failure = exc
            self._log.warning("docker.pool_start_failed", error=str(exc))
            return
        finally:
            self._starting[key] -= 1
            self._changed.set()
            self._changed = anyio.Event()
        if self._closed:
            await remove_container(
                self._client, sandbox.id, self._log, egress_folder=sandbox.egress_folder
            )
            return
        self._ready[key].append(sandbox)

    async def prewarm(self, backend: DockerBackend, *, wait: bool = True) -> None:
        """Start filling the pool for ``backend``'s configuration.

        Args:
            backend: A backend configured as the sessions will be.
            wait: Return only when ``size`` containers are ready.

        Raises:
            BackendError: the pool is not open, or the backend uses another engine.
            DockerError: starting a container failed.
        """
        key = backend.config.key
        if not self._register(backend.config, key):
            raise BackendError(
                f"this pool fills for engine {self.docker_host!r} and at most "
                f"{self.max_configs} configurations"
            )
        while wait and len(self._ready[key]) < self.size:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            await self._changed.wait()

    async def acquire(self, backend: DockerBackend) -> Sandbox | None:
        """Take a ready container for ``backend``'s configuration, or ``None`` on a miss.

        The container comes started and prepared (workspace checked, the
        image's own processes recorded); ``.id`` is its id. Either way the
        pool refills in the background.
        """
        key = backend.config.key
        if not self._register(backend.config, key):
            self.misses += 1
            return None
        queue = self._ready[key]
        if queue:
            self.hits += 1
            sandbox = queue.popleft()
            self._refill(key)
            return sandbox
        self.misses += 1
        return None
