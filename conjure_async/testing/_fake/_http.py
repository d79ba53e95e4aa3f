"""The HTTP side of the fake server: requests as recorded, responses as written (ASGI)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio

__all__ = [
    "HTTPError",
    "MultipartPart",
    "Receive",
    "RecordedRequest",
    "Responder",
    "Send",
    "credentials",
    "error_type_of",
    "now",
    "read_request",
]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

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


def now() -> str:
    """The current time as the API writes it (``2025-10-02T12:00:00.000000Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_type_of(status: int) -> str:
    """The ``error.type`` the API sends with ``status``."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return _STATUS_TYPES.get(status, default)


class HTTPError(Exception):
    """Raised by a route: the request gets this status and an Anthropic error body."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_of(status)


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


async def read_request(scope: dict[str, Any], receive: Receive) -> RecordedRequest:
    """Read an ASGI HTTP request whole."""
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
    return RecordedRequest(
        method=scope["method"].upper(),
        path=scope["path"],
        query=parse_qs(scope.get("query_string", b"").decode("latin-1")),
        headers=headers,
        body=bytes(body),
    )


def credentials(headers: Mapping[str, str]) -> set[str]:
    """The keys a request presents: ``x-api-key`` or ``Authorization: Bearer``."""
    found = {headers.get("x-api-key", "")}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        found.add(token.strip())
    return found - {""}


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


# -- responses ------------------------------------------------------------------


class Responder:
    """Writes one ASGI response (or resets the connection)."""

    def __init__(self, send: Send, receive: Receive, request_id: str) -> None:
        self._send = send
        self._receive = receive
        self.request_id = request_id
        self.started = False

    async def start(
        self, status: int, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send the status line and headers (``request-id`` included)."""
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
        """Send a piece of the body (``more=False``: the last)."""
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def raw(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send a whole response."""
        await self.start(status, content_type, headers)
        await self.chunk(data, more=False)

    async def json(self, payload: Any, status: int = 200) -> None:
        """Send a whole JSON response."""
        await self.raw(status, json.dumps(payload).encode(), "application/json")

    async def error(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send an Anthropic error body (a fake server's own failure says not to retry)."""
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
