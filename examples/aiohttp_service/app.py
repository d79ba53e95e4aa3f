"""conjure_async behind aiohttp.web: the same endpoints as the FastAPI example.

* ``POST /conversations/{id}/messages`` -> the reply as JSON;
* ``POST /conversations/{id}/messages/stream`` -> Server-Sent Events;
* ``GET /conversations/{id}/files/{name}`` -> a file the conversation's tools created;
* ``GET /conversations/{id}/messages`` -> the conversation's messages and pending calls;
* ``GET /model`` -> which model answers, and whether it is scripted;
* ``GET /`` -> the chat page.

The :class:`~examples.services.SessionStore` is created and entered by the
caller, in the task that runs the server (see :func:`running` and
``__main__.py``), not in ``cleanup_ctx``: a store owns a task group, which
must be entered and exited by one task, and ``cleanup_ctx`` generators would
hold it open across a ``yield``.

A client disconnect cancels the chat because the server runs with
``handler_cancellation=True`` (aiohttp's default is to let handlers run on):
:func:`running` sets it; with ``web.run_app`` pass it yourself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler

from conjure_async import ConjureError, ConversationConflictError

from ..fastapi_service.app import conversation_json
from ..services import (
    ConversationNotFoundError,
    FileRefusedError,
    SessionStore,
    TenantBusyError,
    forward_events,
    read_created_file,
)
from ..services.events import SSE_HEADERS

__all__ = ["STORE", "create_app", "running"]

STORE = web.AppKey("conjure_session_store", SessionStore)
"""Where the app keeps its :class:`SessionStore`."""

_SERVED_BY = {"X-Served-By": str(os.getpid())}
"""Which process answered (the multi-process example shows it)."""

INDEX_HTML = Path(__file__).resolve().parent.parent / "services" / "static" / "index.html"


def create_app(
    store: SessionStore,
    *,
    tenant_header: str = "X-Tenant",
    model_info: Mapping[str, Any] | None = None,
) -> web.Application:
    """Build the aiohttp application over an open :class:`SessionStore`.

    Args:
        store: The session store (entered by the caller, in the serving task).
        tenant_header: The request header naming the tenant.
        model_info: What ``GET /model`` answers, e.g.
            :func:`~examples.services.demo.describe_model` of the model
            (default: that the model is unknown).
    """
    about = dict(model_info) if model_info is not None else {"model": None, "scripted": None}
    app = web.Application(middlewares=[_errors])
    app[STORE] = store

    def tenant_of(request: web.Request) -> str:
        return (request.headers.get(tenant_header) or "public").strip()[:64] or "public"

    async def model(request: web.Request) -> web.Response:
        del request
        return web.json_response(about)

    async def index(request: web.Request) -> web.Response:
        html = await anyio.Path(INDEX_HTML).read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html")

    async def post_message(request: web.Request) -> web.Response:
        text = await _message_text(request)
        async with store.session(request.match_info["cid"], tenant=tenant_of(request)) as session:
            reply = await session.chat(text)  # a disconnect cancels this handler
        return web.json_response(text=reply.model_dump_json(), headers=_SERVED_BY)

    async def get_conversation(request: web.Request) -> web.Response:
        async with store.session(request.match_info["cid"], tenant=tenant_of(request)) as session:
            await session.refresh()  # another worker may have served a turn since
            body = conversation_json(session)
        return web.json_response(body, headers=_SERVED_BY)

    async def stream_message(request: web.Request) -> web.StreamResponse:
        text = await _message_text(request)
        async with store.session(request.match_info["cid"], tenant=tenant_of(request)) as session:
            response = web.StreamResponse(headers=SSE_HEADERS)
            await response.prepare(request)
            await forward_events(session, text, response.write)
            await response.write_eof()
        return response

    async def get_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            async with store.existing(
                request.match_info["cid"], tenant=tenant_of(request)
            ) as session:
                data, media_type = await read_created_file(session, name)
        except (ConversationNotFoundError, FileRefusedError):
            return web.json_response({"detail": "no such file"}, status=404)
        return web.Response(
            body=data,
            content_type=media_type,
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"},
        )

    app.router.add_get("/", index)
    app.router.add_get("/model", model)
    app.router.add_get("/conversations/{cid}/messages", get_conversation)
    app.router.add_post("/conversations/{cid}/messages", post_message)
    app.router.add_post("/conversations/{cid}/messages/stream", stream_message)
    app.router.add_get("/conversations/{cid}/files/{name}", get_file)
    return app


async def _message_text(request: web.Request) -> str:
    try:
        body = await request.json()
        text = body["text"]
    except (ValueError, KeyError, TypeError):
        raise web.HTTPUnprocessableEntity(
            text='{"detail": "expected a JSON body {\\"text\\": \\"...\\"}"}',
            content_type="application/json",
        ) from None
    if not isinstance(text, str) or not text:
        raise web.HTTPUnprocessableEntity(
            text='{"detail": "text must be a non-empty string"}', content_type="application/json"
        )
    return text


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map a tenant over its limit to 429 and a failed chat to 502 (before streaming)."""
    try:
        return await handler(request)
    except TenantBusyError as exc:
        return web.json_response({"detail": str(exc)}, status=429, headers={"Retry-After": "1"})
    except ConversationConflictError as exc:
        detail = f"{exc} (another request of this conversation was saved first)"
        return web.json_response({"detail": detail, "error_type": type(exc).__name__}, status=409)
    except ConjureError as exc:
        return web.json_response({"detail": str(exc), "error_type": type(exc).__name__}, status=502)


@asynccontextmanager
async def running(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) for the block; yield its base URL.

    Runs with ``handler_cancellation=True`` so that a client disconnect
    cancels its handler (and the chat in it).
    """
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
