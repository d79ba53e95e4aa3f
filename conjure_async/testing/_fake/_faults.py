"""The faults a test injects into the fake server, and the queue that hands them out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import anyio

from conjure_async.testing._fake._http import RecordedRequest, Responder, error_type_of

__all__ = [
    "STREAM_FAULTS",
    "Delay",
    "DropConnection",
    "ErrorResponse",
    "Fault",
    "Faults",
    "MalformedJSON",
    "MidStreamFault",
    "PlainJSON",
    "StreamDrop",
    "StreamError",
    "StreamFault",
    "StreamPings",
    "StreamRaw",
    "play",
]


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


MidStreamFault: TypeAlias = StreamError | StreamDrop | StreamRaw | StreamPings
"""The faults that take over a started Messages stream."""

StreamFault: TypeAlias = MidStreamFault | PlainJSON
"""The faults that wait for a streamed Messages request."""

Fault: TypeAlias = ErrorResponse | DropConnection | MalformedJSON | Delay | StreamFault
"""Anything :meth:`FakeAnthropicServer.inject` accepts."""

STREAM_FAULTS = (StreamError, StreamDrop, StreamRaw, StreamPings, PlainJSON)


@dataclass(slots=True)
class _Injected:
    fault: Fault
    path: str
    method: str | None
    times: int


class Faults:
    """The injected faults, handed out in the order injected to the requests they match."""

    def __init__(self) -> None:
        self._pending: list[_Injected] = []

    def add(self, fault: Fault, *, path: str, method: str | None, times: int) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``path...`` (of ``method``)."""
        self._pending.append(_Injected(fault, path, method.upper() if method else None, times))

    def take(self, request: RecordedRequest, *, streaming: bool) -> Fault | None:
        """The next fault for ``request`` (a stream fault only for a streamed one)."""
        for injected in self._pending:
            if not request.path.startswith(injected.path):
                continue
            if injected.method is not None and injected.method != request.method:
                continue
            if isinstance(injected.fault, STREAM_FAULTS) and not streaming:
                continue
            injected.times -= 1
            if injected.times <= 0:
                self._pending.remove(injected)
            return injected.fault
        return None


async def play(fault: Fault, out: Responder, closing: anyio.Event) -> bool:
    """Play a fault that comes before the answer; ``True`` when it was the answer.

    A :class:`Delay` waits (less when the server closes) and lets the request
    go on; the stream faults are not played here but by the Messages stream.
    """
    if isinstance(fault, Delay):
        with anyio.move_on_after(fault.seconds):
            await closing.wait()
        return False
    if isinstance(fault, ErrorResponse):
        error_type = fault.error_type or error_type_of(fault.status)
        await out.error(fault.status, error_type, fault.message, fault.headers)
        return True
    if isinstance(fault, DropConnection):
        await out.drop()
        return True
    if isinstance(fault, MalformedJSON):
        await out.raw(fault.status, fault.body.encode(), "application/json")
        return True
    raise TypeError(f"{type(fault).__name__} is played by the Messages stream")
