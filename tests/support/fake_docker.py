"""A fake Docker engine on 127.0.0.1: enough of the Engine API for ``conjure docker build``.

A real HTTP server (uvicorn) answering what aiodocker asks when building an
image: ``GET /version``, ``POST /build`` (a stream of JSON lines, as the
engine sends them) and ``POST /images/create`` (an offline import). What a
build answers is chosen per test, e.g. the error an engine without a
registry gives.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_VERSION = "1.43"

NO_REGISTRY = (
    "failed to resolve source metadata for docker.io/library/python:3.12-slim: "
    "dial tcp: lookup registry-1.docker.io: no such host"
)
"""What an engine that cannot reach a registry says when a build needs a base image."""


@dataclass
class FakeEngine:
    """A running fake engine: its ``DOCKER_HOST`` and what it was asked."""

    host: str
    build_lines: list[dict[str, Any]]
    requests: list[str] = field(default_factory=list)
    build_contexts: list[bytes] = field(default_factory=list)
    """The body of each ``POST /build`` (the tar of the build context)."""


@asynccontextmanager
async def fake_docker_engine(
    build_lines: Sequence[dict[str, Any]] = (),
    *,
    line_delay: float = 0.0,
) -> AsyncIterator[FakeEngine]:
    """Serve a fake engine; yield it with ``host`` as ``tcp://127.0.0.1:PORT``.

    Args:
        build_lines: The JSON lines ``POST /build`` streams (e.g. steps, then
            ``{"error": ...}``).
        line_delay: Seconds between two build lines (a build that takes time).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # clients queue here until uvicorn accepts: no start-up wait needed
    engine = FakeEngine(f"tcp://127.0.0.1:{sock.getsockname()[1]}", list(build_lines))

    async def version(request: Request) -> Response:
        engine.requests.append(f"GET {request.url.path}")
        return JSONResponse({"ApiVersion": API_VERSION, "Version": "24.0.0-fake"})

    async def build(request: Request) -> Response:
        engine.requests.append(f"POST {request.url.path}")
        engine.build_contexts.append(await request.body())

        async def lines() -> AsyncIterator[bytes]:
            for line in engine.build_lines:
                await anyio.sleep(line_delay)
                yield (json.dumps(line) + "\r\n").encode()

        return StreamingResponse(lines(), media_type="application/json")

    async def import_image(request: Request) -> Response:
        engine.requests.append(f"POST {request.url.path}")
        await request.body()
        return JSONResponse({"status": "sha256:" + "0" * 64})

    app = Starlette(
        routes=[
            Route("/version", version),
            Route(f"/v{API_VERSION}/version", version),
            Route(f"/v{API_VERSION}/build", build, methods=["POST"]),
            Route(f"/v{API_VERSION}/images/create", import_image, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(
        app, lifespan="off", http="h11", ws="none", log_level="warning", log_config=None
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield engine
            finally:
                server.should_exit = True
    finally:
        sock.close()
