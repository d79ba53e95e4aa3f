"""Forward a chat's events as Server-Sent Events (``event: <kind>`` / ``data: <json>``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from conjure_async import ConjureError, Session
from conjure_async.events import Event

__all__ = ["SSE_HEADERS", "encode_event", "forward_events"]

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell reverse proxies (nginx) not to buffer the stream
}
"""Response headers of an event stream."""

_log = logging.getLogger("examples.services")


def encode_event(event: Event) -> bytes:
    """One SSE frame: ``event: <kind>``, then the event as one line of JSON.

    A client rebuilds the event with ``conjure_async.events.event_adapter.validate_json``.
    """
    return f"event: {event.kind}\ndata: {event.model_dump_json()}\n\n".encode()


async def forward_events(
    session: Session[object], text: str, write: Callable[[bytes], Awaitable[None]]
) -> None:
    """Run one chat and ``write`` each of its events as an SSE frame as it happens.

    Runs in the calling task: cancelling it (a client disconnect) cancels the
    chat and kills its tools. A failing chat has already sent its ``error``
    event when the exception arrives, so that is logged, not raised; errors of
    ``write`` itself (the client went away) propagate.

    Args:
        session: An open session (from :meth:`SessionStore.session`).
        text: The user's message.
        write: Sends bytes to the client.
    """
    try:
        async with contextlib.aclosing(session.stream(text)) as events:  # type: ignore[type-var]
            async for event in events:
                await write(encode_event(event))
    except ConjureError as exc:
        _log.warning("chat of session %s failed: %r", session.session_id, exc)
