"""conjure_async behind FastAPI: a session per conversation, replies as JSON or as SSE.

Endpoints (the tenant comes from the ``X-Tenant`` header, default ``public``):

* ``POST /conversations/{id}/messages`` with ``{"text": ...}``: runs one chat,
  answers the :class:`~conjure_async.events.Reply` as JSON.
* ``POST /conversations/{id}/messages/stream``: the same chat as Server-Sent
  Events, one frame per conjure event as it happens
  (``event: <kind>`` / ``data: <event JSON>``).
* ``GET /conversations/{id}/files/{name}``: a file that the conversation's
  tools created (only those; anything else is 404).
* ``GET /conversations/{id}/messages``: the conversation's messages (as the API
  receives them) and its tool calls waiting for approval.
* ``GET /model``: which model answers, and whether it is scripted (the page
  says so above the conversation).
* ``GET /``: a small chat page showing the live event stream.

A client that disconnects cancels its chat, which kills the chat's tools: both
chat endpoints watch the ASGI ``receive`` channel for ``http.disconnect``
(Starlette does not cancel handlers on disconnect, and under ASGI spec 2.4 its
``StreamingResponse`` only notices a disconnect when a write fails, which a
quiet tool never causes). A tenant over its limit gets ``429`` with
``Retry-After``. Idle conversations are closed by the
:class:`~examples.services.SessionStore`, which lives in the app's lifespan.

With a ``conversation_store`` (:mod:`conjure_async.store`; ``python -m
examples.fastapi_service`` uses a SQLite file) every conversation is saved
after each tool result and turn: a restarted service continues it, and
several worker processes can serve it (``uvicorn --workers 2 --factory
examples.fastapi_service.app:app_from_env`` on one SQLite file). Two requests
of one conversation at the same moment on two workers: the later save gets
``409 Conflict`` (retry it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from anyio import CancelScope
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from conjure_async import ConjureError, ConversationConflictError, Session
from conjure_async.backends import Backend
from conjure_async.events import Reply
from conjure_async.store import SessionStore as ConversationStore

from ..services import (
    ConversationNotFoundError,
    FileRefusedError,
    SessionStore,
    TenantBusyError,
    forward_events,
    read_created_file,
)
from ..services.demo import (
    default_backend_factory,
    demo_model,
    describe_model,
    session_factory,
    sqlite_store_from_env,
)
from ..services.events import SSE_HEADERS

__all__ = ["MessageIn", "app_from_env", "create_app"]

_SSE_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SSE_HEADERS.items()]
INDEX_HTML = Path(__file__).resolve().parent.parent / "services" / "static" / "index.html"


class MessageIn(BaseModel):
    """The body of a message request."""

    text: str = Field(min_length=1, max_length=200_000)


def create_app(
    model_factory: Callable[[], Any],
    backend_factory: Callable[[], Backend | list[Backend]],
    *,
    idle_ttl: float = 600.0,
    tenant_limit: int = 4,
    tenant_wait: float = 0.0,
    sweep_interval: float | None = None,
    tenant_header: str = "X-Tenant",
    model_info: Mapping[str, Any] | None = None,
    conversation_store: ConversationStore | None = None,
    **session_options: Any,
) -> FastAPI:
    """Build the FastAPI app.

    The :class:`SessionStore` opens in the app's lifespan (so run the server
    with lifespan on) and is reachable as ``app.state.store`` while it runs.

    Args:
        model_factory: Returns the api callback for a new conversation.
        backend_factory: Returns new backend(s) for a new conversation.
        idle_ttl: Seconds before an unused conversation's session is closed.
        tenant_limit: Chats one tenant may run at once.
        tenant_wait: Seconds a chat waits for a tenant slot before ``429``.
        sweep_interval: Seconds between idle checks (default from ``idle_ttl``).
        tenant_header: The request header naming the tenant.
        model_info: What ``GET /model`` answers (default: from one model of
            ``model_factory``, see :func:`~examples.services.demo.describe_model`).
        conversation_store: Where conversations are saved (the app closes it
            at shutdown); ``None``: in memory, lost at a restart.
        **session_options: Passed to each :class:`~conjure_async.Session`.
    """
    make_session = session_factory(
        model_factory, backend_factory, conversation_store=conversation_store, **session_options
    )
    about = dict(model_info) if model_info is not None else describe_model(model_factory())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with SessionStore(
            make_session,
            idle_ttl=idle_ttl,
            tenant_limit=tenant_limit,
            tenant_wait=tenant_wait,
            sweep_interval=sweep_interval,
        ) as store:
            app.state.store = store
            try:
                yield
            finally:
                if conversation_store is not None:
                    await conversation_store.aclose()

    app = FastAPI(title="conjure_async service", lifespan=lifespan)

    def tenant_of(request: Request) -> str:
        return (request.headers.get(tenant_header) or "public").strip()[:64] or "public"

    @app.exception_handler(TenantBusyError)
    async def tenant_busy(request: Request, exc: TenantBusyError) -> Response:
        return _too_many(exc)

    @app.exception_handler(ConversationConflictError)
    async def conflict(request: Request, exc: ConversationConflictError) -> Response:
        return _conflict(exc)

    @app.exception_handler(ConjureError)
    async def chat_failed(request: Request, exc: ConjureError) -> Response:
        return _failed(exc)

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return about

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(await anyio.Path(INDEX_HTML).read_text(encoding="utf-8"))

    @app.post("/conversations/{conversation_id}/messages")
    async def post_message(conversation_id: str, body: MessageIn, request: Request) -> Response:
        store: SessionStore = request.app.state.store
        async with store.session(conversation_id, tenant=tenant_of(request)) as session:
            reply = await _unless_disconnected(request.receive, lambda: session.chat(body.text))
        if reply is None:  # the client left; nobody reads this
            return Response(status_code=499)
        return JSONResponse(reply.model_dump(mode="json"), headers=_SERVED_BY)

    @app.get("/conversations/{conversation_id}/messages")
    async def get_conversation(conversation_id: str, request: Request) -> Response:
        store: SessionStore = request.app.state.store
        async with store.session(conversation_id, tenant=tenant_of(request)) as session:
            await session.refresh()  # another worker may have served a turn since
            body = conversation_json(session)
        return JSONResponse(body, headers=_SERVED_BY)

    @app.post("/conversations/{conversation_id}/messages/stream", response_model=None)
    async def stream_message(conversation_id: str, body: MessageIn, request: Request) -> Response:
        return _EventStream(request.app.state.store, conversation_id, tenant_of(request), body.text)

    @app.get("/conversations/{conversation_id}/files/{name}")
    async def get_file(conversation_id: str, name: str, request: Request) -> Response:
        store: SessionStore = request.app.state.store
        try:
            async with store.existing(conversation_id, tenant=tenant_of(request)) as session:
                data, media_type = await read_created_file(session, name)
        except (ConversationNotFoundError, FileRefusedError):
            return JSONResponse({"detail": "no such file"}, status_code=404)
        disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})

    return app


_SERVED_BY = {"X-Served-By": str(os.getpid())}
"""Which worker process answered (the multi-worker example shows it)."""


def conversation_json(session: Session[Any]) -> dict[str, Any]:
    """What ``GET /conversations/{id}/messages`` answers: the messages and the pending calls."""
    return {
        "messages": [m.to_wire() for m in session.history],
        "pending": [call.model_dump(mode="json") for call in session.pending],
    }


def app_from_env() -> FastAPI:
    """The offline demo app saving to a SQLite file, for ``uvicorn --factory --workers N``.

    ``CONJURE_STORE`` names the file (default ``conversations.db``); every
    worker process opens it, and each conversation moves between them.
    """
    return create_app(
        lambda: demo_model(delay=0.1),
        default_backend_factory(),
        idle_ttl=900,
        conversation_store=sqlite_store_from_env(),
    )


def _conflict(exc: ConversationConflictError) -> Response:
    detail = f"{exc} (another request of this conversation was saved first)"
    return JSONResponse({"detail": detail, "error_type": type(exc).__name__}, status_code=409)


def _too_many(exc: TenantBusyError) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "1"})


def _failed(exc: ConjureError) -> Response:
    return JSONResponse({"detail": str(exc), "error_type": type(exc).__name__}, status_code=502)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(
    receive: Receive, chat: Callable[[], Awaitable[Reply]]
) -> Reply | None:
    """Run ``chat()``; cancel it if the client disconnects (then return None)."""
    reply: Reply | None = None
    error: BaseException | None = None

    async def watch(scope: CancelScope) -> None:
        await _wait_for_disconnect(receive)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            reply = await chat()
        except Exception as exc:  # raised after the task group, unwrapped
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return reply


class _EventStream(Response):
    """An SSE response that runs the chat and cancels it when the client disconnects."""

    def __init__(self, store: SessionStore, conversation_id: str, tenant: str, text: str):
        super().__init__()
        self.store = store
        self.conversation_id = conversation_id
        self.tenant = tenant
        self.text = text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with self.store.session(self.conversation_id, tenant=self.tenant) as session:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": _SSE_RAW_HEADERS,
                    }
                )

                async def write(data: bytes) -> None:
                    await send({"type": "http.response.body", "body": data, "more_body": True})

                disconnected = False

                async def watch(cancel: CancelScope) -> None:
                    nonlocal disconnected
                    await _wait_for_disconnect(receive)
                    disconnected = True
                    cancel.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch, tg.cancel_scope)
                    try:
                        await forward_events(session, self.text, write)
                    except OSError:  # the server noticed the disconnect first
                        disconnected = True
                    finally:
                        tg.cancel_scope.cancel()
                if not disconnected:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TenantBusyError as exc:
            await _too_many(exc)(scope, receive, send)
        except ConversationConflictError as exc:
            await _conflict(exc)(scope, receive, send)
        except ConjureError as exc:  # opening the session failed; nothing was sent yet
            await _failed(exc)(scope, receive, send)
