"""Run the service examples on real sockets of 127.0.0.1, and read their SSE streams."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx2
import uvicorn

from conjure_async.backends import Backend, LocalBackend
from conjure_async.testing import ScriptedModel
from examples.aiohttp_service import create_app as create_aiohttp_app
from examples.aiohttp_service import running as aiohttp_running
from examples.fastapi_service import create_app as create_fastapi_app
from examples.services import SessionStore
from examples.services.demo import describe_model, session_factory

Framework = Literal["fastapi", "aiohttp"]
FRAMEWORKS: tuple[Framework, ...] = ("fastapi", "aiohttp")


@dataclass
class Service:
    """A running service example: its URL, its store and every backend it created."""

    url: str
    store: SessionStore
    backends: list[LocalBackend] = field(default_factory=list)

    def client(self, **options: Any) -> httpx2.AsyncClient:
        """An HTTP client for the service (close it: ``async with``)."""
        return httpx2.AsyncClient(base_url=self.url, timeout=20, **options)


@asynccontextmanager
async def serve_uvicorn(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn (lifespan on) on a free port; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        ws="none",
        http="h11",
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    stopped = anyio.Event()

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stopped.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(10):
                while not server.started:
                    if stopped.is_set():
                        raise RuntimeError("uvicorn stopped during startup")
                    await anyio.sleep(0.005)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


@asynccontextmanager
async def serve(
    framework: Framework,
    model_factory: Callable[[], Any],
    *,
    make_backend: Callable[[], Backend] = LocalBackend,
    **store_options: Any,
) -> AsyncIterator[Service]:
    """Run one service example with a fresh backend per conversation (Local by default).

    Args:
        framework: Which example to run.
        model_factory: The api callback of each new conversation.
        make_backend: Makes each conversation's backend.
        **store_options: ``idle_ttl``, ``tenant_limit``, ``sweep_interval``...
    """
    backends: list[Any] = []

    def backend_factory() -> Backend:
        backend = make_backend()
        backends.append(backend)
        return backend

    if framework == "fastapi":
        app = create_fastapi_app(model_factory, backend_factory, **store_options)
        async with serve_uvicorn(app) as url:
            yield Service(url, app.state.store, backends)
    else:
        make_session = session_factory(model_factory, backend_factory)
        async with (
            SessionStore(make_session, **store_options) as store,
            aiohttp_running(
                create_aiohttp_app(store, model_info=describe_model(model_factory()))
            ) as url,
        ):
            yield Service(url, store, backends)


def scripted(*steps: Any) -> Callable[[], ScriptedModel]:
    """A model factory: each conversation gets a ScriptedModel of ``steps``."""
    return lambda: ScriptedModel(list(steps))


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` pairs of a Server-Sent Events response, as they arrive."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def poll_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (failing after ``timeout`` seconds)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - processes and files signal no event
            await anyio.sleep(0.01)
