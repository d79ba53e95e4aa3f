"""A fake Anthropic API: a real HTTP server on 127.0.0.1 for testing agents.

:class:`FakeAnthropicServer` speaks the Messages API (JSON and SSE streaming),
the Skills API and the Files API over a real socket, so the code under test
runs exactly as it would against ``https://api.anthropic.com``: headers,
retries, streaming, multipart uploads and downloads included. It records
every request, so tests assert what was sent::

    from conjure_async import Session
    from conjure_async.models import AnthropicModel
    from conjure_async.testing import FakeAnthropicServer, text_response
    from conjure_async.testing import ErrorResponse

    async def test_my_agent_retries_once() -> None:
        async with FakeAnthropicServer() as server:
            server.inject(ErrorResponse(529))                # the next call: overloaded
            server.queue(text_response("Hello!"))            # then this answer
            async with AnthropicModel(base_url=server.base_url, api_key="test") as model:
                async with Session(model=model) as session:
                    reply = await session.chat("Hi")
        assert reply.text == "Hello!"
        assert len(server.message_requests) == 2

Messages answers come from a queue (:meth:`FakeAnthropicServer.queue`) of
:class:`~conjure_async.messages.MessagesResponse` objects, dicts, or functions
of the request body (sync or async); a request with ``"stream": true`` gets
the answer as a proper event sequence (``message_start``, the content blocks
with text and ``input_json`` deltas, server tool results whole,
``message_delta``, ``message_stop``). A request naming the code execution
tool or a container gets a ``container`` (``container_fake_N``) unless the
answer sets one, and the container keeps the id the request sent.

Faults (:meth:`FakeAnthropicServer.inject`) apply to the next matching
request: :class:`ErrorResponse` (a status with an Anthropic error body and
headers such as ``retry-after``), :class:`DropConnection` (reset the
connection before answering), :class:`MalformedJSON`, :class:`Delay` (a slow
answer), :class:`StreamError` (an ``error`` event mid-stream),
:class:`StreamDrop` (the connection resets mid-stream), :class:`StreamRaw`
(arbitrary bytes mid-stream, e.g. a malformed frame), :class:`StreamPings`
(``ping`` events forever, never finishing) and :class:`PlainJSON` (a streamed
request answered with the whole message as plain JSON, as some gateways do).

The Skills and Files stores are in memory; uploads are checked like the
real API's (one top folder named like the skill, under 8 MB, a ``[a-z0-9-]``
name without "anthropic" or "claude", a description of 1-1024 characters
without XML tags). Responses use the beta shapes when
the request sends the ``skills-2025-10-02`` / ``files-api-2025-04-14`` beta
header and the post-GA shapes otherwise. Files "created in the container" are
added with :meth:`FakeAnthropicServer.add_file`.

Needs ``uvicorn`` and ``starlette`` (the ``[test]`` extra).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import io
import itertools
import json
import re
import socket
import struct
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self, TypeAlias
from urllib.parse import parse_qs

import anyio

from conjure_async._exceptions import MissingDependencyError
from conjure_async.messages import MessagesResponse

__all__ = [
    "Delay",
    "DropConnection",
    "ErrorResponse",
    "FakeAnthropicServer",
    "Fault",
    "MalformedJSON",
    "MessagesStep",
    "MultipartPart",
    "PlainJSON",
    "RecordedRequest",
    "StreamDrop",
    "StreamError",
    "StreamPings",
    "StreamRaw",
    "message_stream_events",
]

SKILLS_BETA = "skills-2025-10-02"
FILES_BETA = "files-api-2025-04-14"
MAX_SKILL_BYTES = 8 * 1024 * 1024
MAX_CONTAINER_SKILLS = 8
PREBUILT_SKILLS = {
    "xlsx": "Create, edit and analyze Excel spreadsheets",
    "pptx": "Create and edit PowerPoint presentations",
    "docx": "Create and edit Word documents",
    "pdf": "Create, fill and analyze PDF documents",
}

MessagesStep: TypeAlias = (
    MessagesResponse
    | Mapping[str, Any]
    | Callable[[dict[str, Any]], MessagesResponse | Mapping[str, Any]]
    | Callable[[dict[str, Any]], Awaitable[MessagesResponse | Mapping[str, Any]]]
)
"""One scripted Messages answer: a response, its dict, or a function of the request body."""

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_CODE_EXECUTION_PREFIX = "code_execution_"
_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


# -- faults ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Answer with an error status and an Anthropic error body.

    Attributes:
        status: The HTTP status (e.g. 429, 500, 529).
        error_type: ``error.type`` (default: the one the API uses for ``status``).
        message: ``error.message``.
        headers: Extra response headers (``retry-after``, ``x-should-retry``...).
    """

    status: int
    error_type: str | None = None
    message: str = "injected error"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DropConnection:
    """Reset the connection (TCP RST) before sending any response."""


@dataclass(frozen=True, slots=True)
class MalformedJSON:
    """Answer ``status`` with a body that is not JSON."""

    status: int = 200
    body: str = '{"type": "message", "content": [oops'


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds`` before answering normally (a slow response)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class StreamError:
    """For a streamed Messages request: send an ``error`` event after ``after_events`` events."""

    after_events: int = 2
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(frozen=True, slots=True)
class StreamDrop:
    """For a streamed Messages request: reset the connection after ``after_events`` events."""

    after_events: int = 2


@dataclass(frozen=True, slots=True)
class StreamRaw:
    """For a streamed Messages request: send ``data`` as is after ``after_events`` events, then end.

    E.g. a frame whose ``data:`` line is not JSON, to test how a client handles a
    malformed stream.
    """

    data: bytes
    after_events: int = 2


@dataclass(frozen=True, slots=True)
class StreamPings:
    """For a streamed Messages request: after ``after_events`` events, send ``ping`` forever.

    One ``ping`` every ``interval`` seconds until the client goes away or the
    server closes: a stream that is alive but never finishes.
    """

    after_events: int = 2
    interval: float = 0.05


@dataclass(frozen=True, slots=True)
class PlainJSON:
    """For a streamed Messages request: answer the whole message as one JSON body (no SSE)."""


_StreamFault: TypeAlias = StreamError | StreamDrop | StreamRaw | StreamPings | PlainJSON

Fault: TypeAlias = ErrorResponse | DropConnection | MalformedJSON | Delay | _StreamFault
"""Anything :meth:`FakeAnthropicServer.inject` accepts."""

_STREAM_FAULTS = (StreamError, StreamDrop, StreamRaw, StreamPings, PlainJSON)


@dataclass(slots=True)
class _Injected:
    fault: Fault
    path: str
    method: str | None
    times: int


# -- requests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MultipartPart:
    """One part of a ``multipart/form-data`` body."""

    name: str
    """The form field name (``files[]``, ``file``, ``display_title``...)."""
    filename: str | None
    """The part's filename (for skills: the path inside the skill folder)."""
    content: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received, for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    """Query parameters (each a list, as ``parse_qs`` returns them)."""
    headers: dict[str, str]
    """Headers with lower-cased names (repeated headers joined with ``,``)."""
    body: bytes

    @property
    def json(self) -> Any:
        """The JSON body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def betas(self) -> list[str]:
        """The ``anthropic-beta`` values sent."""
        raw = self.headers.get("anthropic-beta", "")
        return [b.strip() for b in raw.split(",") if b.strip()]

    @property
    def parts(self) -> list[MultipartPart]:
        """The multipart parts (empty unless the body is ``multipart/form-data``)."""
        return _parse_multipart(self.headers.get("content-type", ""), self.body)


def _parse_multipart(content_type: str, body: bytes) -> list[MultipartPart]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        return []
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: list[MultipartPart] = []
    for raw_section in body.split(delimiter)[1:]:
        if raw_section.startswith(b"--"):
            break
        section = raw_section.removeprefix(b"\r\n")
        raw_headers, _, content = section.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers: dict[str, str] = {}
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name_match = re.search(r'\bname="([^"]*)"', disposition)
        file_match = re.search(r'\bfilename="([^"]*)"', disposition)
        parts.append(
            MultipartPart(
                name=name_match.group(1) if name_match else "",
                filename=file_match.group(1).replace("%22", '"') if file_match else None,
                content=content,
                content_type=headers.get("content-type"),
            )
        )
    return parts


# -- SSE --------------------------------------------------------------------------


def _chunks(text: str, size: int) -> list[str]:
    if not text:
        return []
    size = max(size, 1)
    return [text[i : i + size] for i in range(0, len(text), size)]


def message_stream_events(
    response: MessagesResponse | Mapping[str, Any],
    *,
    text_chunk_size: int = 8,
    json_chunk_size: int = 16,
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` sequence the Messages API streams for ``response``.

    Text arrives as ``text_delta`` pieces of ``text_chunk_size`` characters,
    tool inputs as ``input_json_delta`` pieces of ``json_chunk_size``; server
    tool results and unknown blocks arrive whole in ``content_block_start``.
    The container and stop reason come in ``message_delta``.
    """
    message = response.to_wire() if isinstance(response, MessagesResponse) else dict(response)
    usage = dict(message.get("usage") or {})
    start = {
        "id": message.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": message.get("model", ""),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": 1,
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        },
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]

    def add(index: int, block: dict[str, Any], deltas: Iterable[dict[str, Any]]) -> None:
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    for index, raw in enumerate(message.get("content") or []):
        block = dict(raw)
        kind = block.get("type")
        if kind == "text":
            text = str(block.get("text", ""))
            add(
                index,
                {**block, "text": ""},
                ({"type": "text_delta", "text": piece} for piece in _chunks(text, text_chunk_size)),
            )
        elif kind == "thinking":
            deltas: list[dict[str, Any]] = [
                {"type": "thinking_delta", "thinking": piece}
                for piece in _chunks(str(block.get("thinking", "")), text_chunk_size)
            ]
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            add(index, {**block, "thinking": "", "signature": ""}, deltas)
        elif kind in _JSON_INPUT_BLOCKS:
            encoded = json.dumps(block.get("input") or {})
            add(
                index,
                {**block, "input": {}},
                (
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in ["", *_chunks(encoded, json_chunk_size)]
                ),
            )
        else:
            add(index, block, ())
    delta: dict[str, Any] = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    if message.get("container") is not None:
        delta["container"] = message["container"]
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": usage.get("output_tokens", 0)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _frame(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


# -- the stores ------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error_type(status: int) -> str:
    default = "api_error" if status >= 500 else "invalid_request_error"
    return _STATUS_TYPES.get(status, default)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or _error_type(status)


@dataclass(slots=True)
class _Version:
    id: str
    version: str
    skill_id: str
    name: str
    description: str
    directory: str
    created_at: str
    files: dict[str, bytes]

    def wire(self, *, beta: bool) -> dict[str, Any]:
        base = {
            "id": self.id,
            "type": "skill_version",
            "skill_id": self.skill_id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
        }
        if beta:
            base.update(version=self.version, directory=self.directory)
        return base


@dataclass(slots=True)
class _Skill:
    id: str
    title: str | None
    source: str
    created_at: str
    updated_at: str
    versions: dict[str, _Version] = field(default_factory=dict)

    @property
    def latest(self) -> _Version | None:
        return list(self.versions.values())[-1] if self.versions else None

    def wire(self, *, beta: bool) -> dict[str, Any]:
        latest = self.latest
        if beta:
            return {
                "id": self.id,
                "type": "skill",
                "display_title": self.title,
                "latest_version": latest.version if latest else None,
                "source": self.source,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }
        return {
            "id": self.id,
            "type": "skill",
            "display_name": self.title,
            "latest_version_id": latest.id if latest else None,
            "source": {"type": self.source},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def find(self, ref: str) -> _Version:
        for version in self.versions.values():
            if ref in (version.version, version.id):
                return version
        if ref == "latest" and self.latest is not None:
            return self.latest
        raise _HTTPError(404, f"skill version {ref!r} of {self.id} not found")


@dataclass(slots=True)
class _File:
    id: str
    filename: str
    mime_type: str
    content: bytes
    created_at: str
    downloadable: bool

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.content),
            "created_at": self.created_at,
            "downloadable": self.downloadable,
        }


def _frontmatter(text: str) -> dict[str, str]:
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.DOTALL)
    if match is None:
        return {}
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


# -- the server ---------------------------------------------------------------------------


class FakeAnthropicServer:
    """A fake Anthropic API on a free port of 127.0.0.1 (an ASGI app under uvicorn).

    Use it as an async context manager; :attr:`base_url` is where to point
    ``AnthropicModel(base_url=...)``, the official SDK's ``base_url`` or the
    Skills/Files clients. Everything it serves is scripted or in memory.

    Args:
        responses: Initial Messages answers (see :meth:`queue`), or one
            function of the request body answering every Messages call.
        api_key: When set, requests presenting another key (``x-api-key`` or
            ``Authorization: Bearer``), or none, get 401 ``authentication_error``.
        text_chunk_size: Characters per ``text_delta`` when streaming.
        json_chunk_size: Characters per ``input_json_delta`` when streaming.

    Attributes:
        requests: Every request received, in order.
        skills_created: How many skills were created through the Skills API.
    """

    _running: ClassVar[set[FakeAnthropicServer]] = set()

    def __init__(
        self,
        responses: Iterable[MessagesStep] | Callable[[dict[str, Any]], Any] = (),
        *,
        api_key: str | None = None,
        text_chunk_size: int = 8,
        json_chunk_size: int = 16,
    ) -> None:
        self._queue: list[MessagesStep] = []
        self._responder: Callable[[dict[str, Any]], Any] | None = None
        if callable(responses):
            self._responder = responses
        else:
            self._queue.extend(responses)
        self.api_key = api_key
        self.text_chunk_size = text_chunk_size
        self.json_chunk_size = json_chunk_size
        self.requests: list[RecordedRequest] = []
        self.skills_created = 0
        self._faults: list[_Injected] = []
        self._skills: dict[str, _Skill] = {}
        self._files: dict[str, _File] = {}
        self._ids = itertools.count(1)
        self._version_clock = itertools.count(1759178010641129)
        self._server: Any = None
        self._sockets: list[socket.socket] = []
        self._closing = anyio.Event()
        self._port: int | None = None
        for skill_id in PREBUILT_SKILLS:
            self._skills[skill_id] = _Skill(skill_id, skill_id, "anthropic", _now(), _now())

    # -- public API -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, once the server runs."""
        if self._port is None:
            raise RuntimeError("the FakeAnthropicServer is not running; use 'async with'")
        return f"http://127.0.0.1:{self._port}"

    def queue(self, *steps: MessagesStep) -> None:
        """Add Messages answers, used in order by the next ``POST /v1/messages`` calls.

        Each is a :class:`MessagesResponse`, its dict, or a (sync or async)
        function of the request body returning one. Missing ``id`` and
        ``model`` are filled in. When the queue is empty a call gets a 500
        ``api_error`` with ``x-should-retry: false``.
        """
        self._queue.extend(steps)

    @property
    def remaining(self) -> int:
        """Messages answers still queued."""
        return len(self._queue)

    def inject(
        self, fault: Fault, *, path: str = "/v1/messages", method: str | None = None, times: int = 1
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests whose path starts with ``path``.

        Faults apply in the order injected. :class:`StreamError` and
        the other stream faults (:class:`StreamDrop`, :class:`StreamRaw`,
        :class:`StreamPings`, :class:`PlainJSON`) wait for a streamed Messages request.
        """
        self._faults.append(_Injected(fault, path, method.upper() if method else None, times))

    def add_file(
        self,
        content: bytes,
        filename: str,
        *,
        mime_type: str = "application/octet-stream",
        downloadable: bool = True,
        file_id: str | None = None,
    ) -> str:
        """Store a file as if code execution had created it; return its ``file_id``."""
        new_id = file_id or f"file_fake{next(self._ids):06d}"
        self._files[new_id] = _File(new_id, filename, mime_type, content, _now(), downloadable)
        return new_id

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a stored file (raises ``KeyError`` when unknown)."""
        return self._files[file_id].content

    @property
    def file_ids(self) -> list[str]:
        """The ids of the stored files."""
        return list(self._files)

    @property
    def custom_skill_ids(self) -> list[str]:
        """The ids of the custom skills stored."""
        return [s.id for s in self._skills.values() if s.source == "custom"]

    def skill_versions(self, skill_id: str) -> list[str]:
        """The versions of a stored skill, oldest first (raises ``KeyError`` when unknown)."""
        return [v.version for v in self._skills[skill_id].versions.values()]

    def skill_files(self, skill_id: str, version: str = "latest") -> dict[str, bytes]:
        """The files of an uploaded skill version, by the path they were sent with."""
        return dict(self._skills[skill_id].find(version).files)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests, in order."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    @property
    def message_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the Messages requests, in order."""
        return [r.json for r in self.message_requests]

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The requests whose path starts with ``path`` (and of ``method``, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path) and (method is None or r.method == method.upper())
        ]

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            import uvicorn  # noqa: PLC0415 - optional test dependency
        except ImportError as exc:
            raise MissingDependencyError("uvicorn", "test") from exc
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        self._port = sock.getsockname()[1]
        self._sockets = [sock]
        config = uvicorn.Config(
            self._asgi,
            lifespan="off",
            ws="none",
            http="h11",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=self._sockets)
            await server.on_tick(0)
        except BaseException:
            sock.close()
            self._port = None
            raise
        self._server = server
        FakeAnthropicServer._running.add(self)
        return self

    @classmethod
    def running(cls) -> list[FakeAnthropicServer]:
        """The servers started and not yet closed (a leak check for test suites)."""
        return list(cls._running)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        self._closing.set()
        FakeAnthropicServer._running.discard(self)
        server, self._server = self._server, None
        if server is not None:
            with anyio.CancelScope(shield=True):
                await server.shutdown(sockets=self._sockets)
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    # -- the ASGI app ------------------------------------------------------------------

    async def _asgi(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        recorded = RecordedRequest(
            method=scope["method"].upper(),
            path=scope["path"],
            query=parse_qs(scope.get("query_string", b"").decode("latin-1")),
            headers=headers,
            body=bytes(body),
        )
        self.requests.append(recorded)
        request_id = f"req_fake{len(self.requests):06d}"
        responder = _Responder(send, receive, request_id)
        try:
            await self._dispatch(recorded, responder)
        except _HTTPError as error:
            await responder.error(error.status, error.error_type, error.message)

    def _take_fault(self, request: RecordedRequest, *, streaming: bool) -> Fault | None:
        for injected in self._faults:
            if not request.path.startswith(injected.path):
                continue
            if injected.method is not None and injected.method != request.method:
                continue
            if isinstance(injected.fault, _STREAM_FAULTS) and not streaming:
                continue
            injected.times -= 1
            if injected.times <= 0:
                self._faults.remove(injected)
            return injected.fault
        return None

    async def _dispatch(self, request: RecordedRequest, out: _Responder) -> None:
        body = request.json if isinstance(request.json, dict) else None
        streaming = (
            request.path == "/v1/messages" and body is not None and body.get("stream") is True
        )
        stream_fault: _StreamFault | None = None
        while (fault := self._take_fault(request, streaming=streaming)) is not None:
            if isinstance(fault, Delay):
                with anyio.move_on_after(fault.seconds):
                    await self._closing.wait()
                continue
            if isinstance(fault, ErrorResponse):
                await out.error(
                    fault.status,
                    fault.error_type or _error_type(fault.status),
                    fault.message,
                    fault.headers,
                )
                return
            if isinstance(fault, DropConnection):
                await out.drop()
                return
            if isinstance(fault, MalformedJSON):
                await out.raw(fault.status, fault.body.encode(), "application/json")
                return
            stream_fault = fault
            break
        if self.api_key is not None and self.api_key not in _credentials(request.headers):
            raise _HTTPError(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise _HTTPError(400, "anthropic-version: header is required")
        await self._route(request, body, out, stream_fault)

    async def _route(
        self,
        request: RecordedRequest,
        body: dict[str, Any] | None,
        out: _Responder,
        stream_fault: _StreamFault | None,
    ) -> None:
        method, path = request.method, request.path.rstrip("/")
        beta_skills = SKILLS_BETA in request.betas
        beta_files = FILES_BETA in request.betas
        if path == "/v1/messages" and method == "POST":
            await self._messages(body, out, stream_fault)
            return
        if path == "/v1/skills":
            if method == "POST":
                await out.json(self._create_skill(request, beta=beta_skills))
            elif method == "GET":
                await out.json(self._list_skills(request, beta=beta_skills))
            else:
                raise _HTTPError(405, f"{method} not allowed")
            return
        if match := re.fullmatch(r"/v1/skills/([^/]+)", path):
            await out.json(self._skill(method, match.group(1), beta=beta_skills))
            return
        if match := re.fullmatch(r"/v1/skills/([^/]+)/versions", path):
            skill = self._get_skill(match.group(1))
            if method == "POST":
                version = self._add_version(skill, request.parts)
                await out.json(version.wire(beta=beta_skills))
            else:
                versions = [v.wire(beta=beta_skills) for v in skill.versions.values()]
                await out.json(_cursor_page(versions, request.query))
            return
        if match := re.fullmatch(r"/v1/skills/([^/]+)/versions/([^/]+)(/content)?", path):
            skill = self._get_skill(match.group(1))
            version = skill.find(match.group(2))
            if match.group(3):
                await out.raw(200, _zip(version.files), "application/zip")
            elif method == "DELETE":
                del skill.versions[version.version]
                ref = version.version if beta_skills else version.id
                await out.json({"id": ref, "type": "skill_version_deleted"})
            else:
                await out.json(version.wire(beta=beta_skills))
            return
        if path == "/v1/files":
            if method == "POST":
                await out.json(self._upload_file(request.parts))
            else:
                await out.json(self._list_files(request.query, beta=beta_files))
            return
        if match := re.fullmatch(r"/v1/files/([^/]+)(/content)?", path):
            stored = self._files.get(match.group(1))
            if stored is None:
                raise _HTTPError(404, f"file {match.group(1)!r} not found")
            if match.group(2):
                if not stored.downloadable:
                    raise _HTTPError(400, f"file {stored.id} is not downloadable")
                await out.raw(200, stored.content, stored.mime_type)
            elif method == "DELETE":
                del self._files[stored.id]
                await out.json({"id": stored.id, "type": "file_deleted"})
            else:
                await out.json(stored.wire())
            return
        raise _HTTPError(404, f"{method} {path}: no such endpoint in the fake server")

    # -- messages ----------------------------------------------------------------------

    async def _next_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._responder is not None:
            step: Any = self._responder
        elif self._queue:
            step = self._queue.pop(0)
        else:
            raise _HTTPError(500, "FakeAnthropicServer: no scripted Messages response left")
        if callable(step):
            step = step(body)
            if inspect.isawaitable(step):
                step = await step
        if isinstance(step, MessagesResponse):
            return step.to_wire()
        if isinstance(step, Mapping):
            copied: dict[str, Any] = json.loads(json.dumps(dict(step)))  # a deep copy
            return copied
        raise TypeError(f"a scripted Messages step produced {type(step).__name__}")

    def _container_for(self, body: dict[str, Any]) -> dict[str, Any] | None:
        container = body.get("container")
        tools = body.get("tools") or []
        uses_code = any(str(t.get("type", "")).startswith(_CODE_EXECUTION_PREFIX) for t in tools)
        if container is None and not uses_code:
            return None
        skills: list[dict[str, Any]] = []
        container_id: str | None = None
        if isinstance(container, str):
            container_id = container
        elif isinstance(container, dict):
            container_id = container.get("id")
            skills = list(container.get("skills") or [])
        if skills and not uses_code:
            raise _HTTPError(400, "container.skills requires the code execution tool")
        if len(skills) > MAX_CONTAINER_SKILLS:
            raise _HTTPError(
                400, f"container.skills: at most {MAX_CONTAINER_SKILLS} skills per request"
            )
        for entry in skills:
            if entry.get("type") == "custom" and entry.get("skill_id") not in self._skills:
                raise _HTTPError(404, f"skill {entry.get('skill_id')!r} not found")
        result: dict[str, Any] = {
            "id": container_id or f"container_fake{next(self._ids):06d}",
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat(),
        }
        if skills:
            result["skills"] = [
                {
                    "type": s.get("type"),
                    "skill_id": s.get("skill_id"),
                    "version": s.get("version", "latest"),
                }
                for s in skills
            ]
        return result

    async def _messages(
        self,
        body: dict[str, Any] | None,
        out: _Responder,
        stream_fault: _StreamFault | None,
    ) -> None:
        if body is None:
            raise _HTTPError(400, "the body must be a JSON object")
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            raise _HTTPError(400, f"{missing[0]}: Field required")
        container = self._container_for(body)
        answer = await self._next_answer(body)
        answer.setdefault("type", "message")
        answer.setdefault("role", "assistant")
        if not answer.get("id"):
            answer["id"] = f"msg_fake{next(self._ids):06d}"
        if not answer.get("model"):
            answer["model"] = body["model"]
        if container is not None and answer.get("container") is None:
            answer["container"] = container
        answer.setdefault("stop_sequence", None)
        answer.setdefault("usage", {"input_tokens": 10, "output_tokens": 5})
        if body.get("stream") is not True or isinstance(stream_fault, PlainJSON):
            await out.json(answer)
            return
        events = message_stream_events(
            answer, text_chunk_size=self.text_chunk_size, json_chunk_size=self.json_chunk_size
        )
        await out.start(200, "text/event-stream; charset=utf-8")
        for count, (event, data) in enumerate(events):
            if stream_fault is not None and count == stream_fault.after_events:
                if isinstance(stream_fault, StreamDrop):
                    await out.drop()
                    return
                if isinstance(stream_fault, StreamRaw):
                    await out.chunk(stream_fault.data, more=False)
                    return
                if isinstance(stream_fault, StreamPings):
                    await self._ping_forever(out, stream_fault.interval)
                    return
                error = {
                    "type": "error",
                    "error": {"type": stream_fault.error_type, "message": stream_fault.message},
                }
                await out.chunk(_frame("error", error), more=False)
                return
            await out.chunk(_frame(event, data))
        await out.chunk(b"", more=False)

    async def _ping_forever(self, out: _Responder, interval: float) -> None:
        """Send ``ping`` events until the client disconnects or the server closes."""
        while not self._closing.is_set():
            await out.chunk(_frame("ping", {"type": "ping"}))
            if await out.disconnected_within(interval):
                return
        with contextlib.suppress(Exception):
            await out.chunk(b"", more=False)

    # -- skills ------------------------------------------------------------------------

    def _get_skill(self, skill_id: str) -> _Skill:
        skill = self._skills.get(skill_id)
        if skill is None:
            raise _HTTPError(404, f"skill {skill_id!r} not found")
        return skill

    def _skill(self, method: str, skill_id: str, *, beta: bool) -> dict[str, Any]:
        skill = self._get_skill(skill_id)
        if method == "DELETE":
            if skill.versions:
                raise _HTTPError(
                    400, "cannot delete a skill with existing versions; delete every version first"
                )
            del self._skills[skill_id]
            return {"id": skill_id, "type": "skill_deleted"}
        return skill.wire(beta=beta)

    def _add_version(self, skill: _Skill, parts: list[MultipartPart]) -> _Version:
        files = {
            p.filename: p.content for p in parts if p.name in ("files[]", "files") and p.filename
        }
        if not files:
            raise _HTTPError(400, "files: at least one file is required")
        if any("\\" in path for path in files):
            raise _HTTPError(400, "Skill contains path with invalid characters")
        if sum(len(c) for c in files.values()) >= MAX_SKILL_BYTES:
            raise _HTTPError(400, "the skill's files must total less than 8 MB")
        tops = {path.split("/", 1)[0] for path in files}
        if len(tops) != 1 or any("/" not in path for path in files):
            raise _HTTPError(400, "SKILL.md file must be exactly in the top-level folder.")
        top = tops.pop()
        skill_md = files.get(f"{top}/SKILL.md")
        if skill_md is None:
            raise _HTTPError(400, "SKILL.md file must be exactly in the top-level folder.")
        meta = _frontmatter(skill_md.decode("utf-8", "replace"))
        name = meta.get("name", "")
        if name != top:
            raise _HTTPError(
                400, f"The folder name '{top}' must match the skill name '{name}' in SKILL.md."
            )
        _check_frontmatter(name, meta.get("description", ""))
        stamp = str(next(self._version_clock))
        version = _Version(
            id=f"skillver_fake{next(self._ids):06d}",
            version=stamp,
            skill_id=skill.id,
            name=name,
            description=meta.get("description", ""),
            directory=top,
            created_at=_now(),
            files=files,
        )
        skill.versions[stamp] = version
        skill.updated_at = version.created_at
        if skill.title is None:
            skill.title = name
        return version

    def _create_skill(self, request: RecordedRequest, *, beta: bool) -> dict[str, Any]:
        parts = request.parts
        fields = {p.name: p.content.decode("utf-8", "replace") for p in parts if p.filename is None}
        title = fields.get("display_title") or fields.get("display_name")
        skill = _Skill(f"skill_fake{next(self._ids):06d}", title or None, "custom", _now(), _now())
        self._add_version(skill, parts)  # validates before the skill exists
        self._skills[skill.id] = skill
        self.skills_created += 1
        return skill.wire(beta=beta)

    def _list_skills(self, request: RecordedRequest, *, beta: bool) -> dict[str, Any]:
        source = _first(request.query, "source")
        skills = [
            s.wire(beta=beta) for s in self._skills.values() if source is None or s.source == source
        ]
        return _cursor_page(skills, request.query)

    # -- files -------------------------------------------------------------------------

    def _upload_file(self, parts: list[MultipartPart]) -> dict[str, Any]:
        upload = next((p for p in parts if p.name == "file"), None)
        if upload is None:
            raise _HTTPError(400, "file: Field required")
        file_id = self.add_file(
            upload.content,
            upload.filename or "upload",
            mime_type=upload.content_type or "application/octet-stream",
            downloadable=False,
        )
        return self._files[file_id].wire()

    def _list_files(self, query: dict[str, list[str]], *, beta: bool) -> dict[str, Any]:
        items = [f.wire() for f in self._files.values()]
        if not beta:
            return _cursor_page(items, query)
        limit = _limit(query)
        after = _first(query, "after_id")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }


def _check_frontmatter(name: str, description: str) -> None:
    """The Skills API's rules for ``name`` and ``description`` (400 when broken)."""
    if not re.fullmatch(r"[a-z0-9-]{1,64}", name):
        raise _HTTPError(400, "name: at most 64 characters, only lowercase letters, digits, '-'")
    for word in ("anthropic", "claude"):
        if word in name:
            raise _HTTPError(400, f"name: must not contain the reserved word '{word}'")
    if not 1 <= len(description) <= 1024:
        raise _HTTPError(400, "description: must be 1-1024 characters")
    if re.search(r"<\s*/?\s*[A-Za-z_][^<>]*>", description):
        raise _HTTPError(400, "description: must not contain XML tags")


def _credentials(headers: Mapping[str, str]) -> set[str]:
    """The keys a request presents: ``x-api-key`` or ``Authorization: Bearer``."""
    found = {headers.get("x-api-key", "")}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        found.add(token.strip())
    return found - {""}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    raw = (query.get("limit") or ["20"])[0]
    try:
        value = int(raw)
    except ValueError as exc:
        raise _HTTPError(400, f"limit: {raw!r} is not an integer") from exc
    if not 1 <= value <= 1000:
        raise _HTTPError(400, "limit: must be between 1 and 1000")
    return value


def _cursor_page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    limit = _limit(query)
    page = _first(query, "page")
    start = 0
    if page is not None:
        match = re.fullmatch(r"page_(\d+)", page)
        if match is None:
            raise _HTTPError(400, f"page: invalid cursor {page!r}")
        start = int(match.group(1))
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"data": chunk, "has_more": more, "next_page": f"page_{start + limit}" if more else None}


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in sorted(files.items()):
            archive.writestr(path, content)
    return buffer.getvalue()


class _Responder:
    """Writes one ASGI response (or resets the connection)."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        request_id: str,
    ) -> None:
        self._send = send
        self._receive = receive
        self.request_id = request_id
        self.started = False

    async def start(
        self, status: int, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        all_headers = {
            "content-type": content_type,
            "request-id": self.request_id,
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in all_headers.items()
                ],
            }
        )

    async def chunk(self, data: bytes, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def raw(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        await self.start(status, content_type, headers)
        await self.chunk(data, more=False)

    async def json(self, payload: Any, status: int = 200) -> None:
        await self.raw(status, json.dumps(payload).encode(), "application/json")

    async def error(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        if "FakeAnthropicServer" in message:
            extra.setdefault("x-should-retry", "false")
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": self.request_id,
        }
        await self.raw(status, json.dumps(payload).encode(), "application/json", extra)

    async def disconnected_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to disconnect; return whether it did."""
        with anyio.move_on_after(seconds):
            while True:
                message = await self._receive()
                if message.get("type") == "http.disconnect":
                    return True
        return False

    async def drop(self) -> None:
        """Reset the TCP connection (RST) without completing the response."""
        cycle: Any = getattr(self._receive, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # pragma: no cover - only under other ASGI servers
            raise RuntimeError("DropConnection needs uvicorn's h11 protocol")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        cycle.disconnected = True  # so uvicorn neither writes to nor logs about the socket
