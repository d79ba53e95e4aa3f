"""``session.stream()``'s object, and closing a session from the wrong task.

:class:`EventStream` is what ``session.stream(...)`` returns: an async
iterator of the turn's events that is also an async context manager, so
``async with session.stream(text) as events:`` closes the stream (and cancels
the turn if it still runs) at the block's end, in the task that read it. An
async generator left unclosed is finalized later, maybe in another task,
where anyio refuses to exit the scopes it entered.

A session's task group belongs to the task that opened it (anyio's rule).
Closed from another task, :func:`close_elsewhere` frees what it can (the
background work, the backends: no process or container is left) and raises
:class:`~conjure_async.SessionStateError` saying what to do, instead of
anyio's ``RuntimeError`` about cancel scopes.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Self

from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import SessionStateError
from conjure_async.events import Event

if TYPE_CHECKING:
    from conjure_async._session import Session

__all__ = ["EventStream", "close_elsewhere", "event_stream"]

P = ParamSpec("P")


class EventStream(AsyncCloseable, AsyncIterator[Event]):
    """The events of one turn: iterate them; ``async with`` (or :meth:`aclose`) closes early.

    Closing before the turn's end cancels the turn (its tools are stopped,
    the history stays consistent).
    """

    __slots__ = ("_events",)

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self._events = events

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Awaitable[Event]:
        return self._events.__anext__()  # the generator's own awaitable: no frame between

    async def aclose(self) -> None:
        """Stop reading: the turn is cancelled if it still runs (idempotent)."""
        await self._events.aclose()  # type: ignore[attr-defined]  # an async generator


def event_stream(
    method: Callable[P, AsyncIterator[Event]],
) -> Callable[P, EventStream]:
    """Make an async generator method return an :class:`EventStream`."""

    @functools.wraps(method)
    def stream(*args: P.args, **kwargs: P.kwargs) -> EventStream:
        return EventStream(method(*args, **kwargs))

    return stream


async def close_elsewhere(session: Session[Any]) -> NoReturn:
    """Close ``session`` from a task other than its opener: free its resources, then raise.

    Raises:
        SessionStateError: Always, saying how to open and close a session.
    """
    from conjure_async._session import SessionState, _may_have_tasks  # noqa: PLC0415 - a cycle

    state = session._state
    if state in (SessionState.OPEN, SessionState.OPENING):
        session._state = SessionState.CLOSING
        tg = session._tg
        if tg is not None and _may_have_tasks(tg):
            tg.cancel_scope.cancel()  # background work (streams, backend tasks) stops
        try:
            session._deadlines.close()
            await session._close_backends(session.backends)
        finally:
            session._state = SessionState.CLOSED
    raise SessionStateError(
        f"session {session.session_id} was closed from another task than the one that "
        "opened it. Its tools and backends are closed, but a session's task group belongs "
        "to the task that opened it: open and close a session in one task (`async with "
        "Session(...)`), e.g. a task that hosts it across requests (see "
        "docs/web-services.md), or keep it within one request"
    )
