"""A small log REST API for the demo, served on 127.0.0.1 (starlette + uvicorn).

``GET /services``                          the services that have logs
``GET /logs/{service}?offset=0&limit=100`` a page of a service's log lines (JSON)

The logs are generated deterministically (a fixed seed per service) in the
format the ``log-analyzer`` skill reads. Services listed in ``unavailable``
answer ``503`` to show how a tool failure reaches the model.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from conjure_async import MissingDependencyError

SERVICES = ("api", "worker", "billing")
"""The services of the demo API."""

UNAVAILABLE = ("billing",)
"""Services whose log shard is "down" in the demo (they answer 503)."""

MAX_PAGE = 100

_MESSAGES: dict[str, dict[str, list[str]]] = {
    "api": {
        "INFO": ["request served", "health check ok", "cache hit"],
        "WARN": ["slow response", "retrying upstream"],
        "ERROR": ["upstream timed out", "upstream timed out", "invalid token"],
    },
    "worker": {
        "INFO": ["job started", "job finished", "queue drained"],
        "WARN": ["job slow"],
        "ERROR": ["job failed: retries exhausted", "lost connection to queue"],
    },
    "billing": {
        "INFO": ["invoice created"],
        "WARN": ["payment retry"],
        "ERROR": ["card declined"],
    },
}


def generate_logs(service: str, lines: int = 240) -> list[str]:
    """Return ``lines`` deterministic log lines of ``service``."""
    rng = random.Random(f"conjure-demo-{service}")
    start = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)
    out = []
    for index in range(lines):
        level = rng.choices(["INFO", "WARN", "ERROR"], weights=[80, 12, 8])[0]
        message = rng.choice(_MESSAGES[service][level])
        stamp = (start + timedelta(seconds=15 * index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        latency = rng.randint(5, 900)
        out.append(
            f'{stamp} {level} service={service} msg="{message}" latency_ms={latency} '
            f"request_id=r{index:05d}"
        )
    return out


def create_app(logs: Mapping[str, Sequence[str]], unavailable: Sequence[str] = UNAVAILABLE) -> Any:
    """Build the starlette application serving ``logs``."""
    try:
        # Imported on use: starlette and uvicorn are test/example dependencies only.
        from starlette.applications import Starlette  # noqa: PLC0415
        from starlette.requests import Request  # noqa: PLC0415
        from starlette.responses import JSONResponse  # noqa: PLC0415
        from starlette.routing import Route  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("starlette", "test") from exc

    async def services(request: Request) -> JSONResponse:
        return JSONResponse({"services": sorted(logs)})

    async def service_logs(request: Request) -> JSONResponse:
        service = request.path_params["service"]
        if service not in logs:
            return JSONResponse({"error": f"no service {service!r}"}, status_code=404)
        if service in unavailable:
            return JSONResponse({"error": "log shard unavailable"}, status_code=503)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", str(MAX_PAGE)))))
        except ValueError:
            return JSONResponse({"error": "offset and limit must be integers"}, status_code=400)
        lines = list(logs[service])
        return JSONResponse(
            {
                "service": service,
                "offset": offset,
                "total": len(lines),
                "lines": lines[offset : offset + limit],
            }
        )

    return Starlette(routes=[Route("/services", services), Route("/logs/{service}", service_logs)])


@asynccontextmanager
async def serve_log_api(
    logs: Mapping[str, Sequence[str]] | None = None,
    *,
    unavailable: Sequence[str] = UNAVAILABLE,
) -> AsyncIterator[str]:
    """Serve the log API on a free port of 127.0.0.1; yield its base URL.

    The server stops when the block exits.
    """
    try:
        import uvicorn  # noqa: PLC0415 - a test/example dependency, imported on use
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("uvicorn", "test") from exc
    if logs is None:
        logs = {service: generate_logs(service) for service in SERVICES}
    app = create_app(logs, unavailable)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)  # noqa: FBT003 - the socket API
    port = sock.getsockname()[1]
    # log_config=None: an example must not reconfigure the application's logging.
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        http="h11",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        # Serve on the running loop without uvicorn's main loop (and its signal handlers).
        await server.startup(sockets=[sock])
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            with anyio.CancelScope(shield=True):
                await server.shutdown(sockets=[sock])
    finally:
        sock.close()
