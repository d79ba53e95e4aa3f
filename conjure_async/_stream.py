"""The channel carrying one streaming turn's events to the reader of ``Session.stream``.

One writer (the turn's task) and one reader (the ``stream()`` iterator). A
write is a deque append while fewer than :data:`LIMIT` events wait, with no
checkpoint and no task switch; the writer waits only when the reader falls
that far behind (back-pressure), and the reader waits only when nothing is
left. It replaces an anyio memory object stream, whose send and receive cost
a checkpoint (a task switch) or several microseconds of bookkeeping per event.
Cancellation is the session's: the reader cancels the turn's scope when it
stops early, which also wakes a writer waiting for room.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Iterator
from typing import Any, Final, Generic, TypeVar, cast

import anyio

__all__ = ["LIMIT", "EventChannel"]

LIMIT: Final = 64
"""Events that may wait for the reader before the writer waits for room."""

ItemT = TypeVar("ItemT")


class EventChannel(Generic[ItemT]):
    """A one-writer, one-reader queue of a turn's events, closed by the writer."""

    __slots__ = ("_items", "_readable", "_writable", "closed")

    def __init__(self) -> None:
        self._items: deque[ItemT] = deque()
        self._readable: anyio.Event | None = None
        self._writable: anyio.Event | None = None
        self.closed = False
        """The writer is done: once the waiting items are read, there are no more."""

    def put(self, item: ItemT) -> Awaitable[None]:
        """Queue ``item``; the awaitable waits for room only when :data:`LIMIT` items wait.

        Returns a ready awaitable in the common case: no coroutine is made
        per event.
        """
        items = self._items
        items.append(item)
        readable = self._readable
        if readable is not None:
            self._readable = None
            readable.set()
        if len(items) < LIMIT:
            return _READY
        return self._wait_for_room()

    async def _wait_for_room(self) -> None:
        self._writable = writable = anyio.Event()
        await writable.wait()

    def close(self) -> None:
        """No more items will come (the writer calls it, also on error and cancellation)."""
        self.closed = True
        readable = self._readable
        if readable is not None:
            self._readable = None
            readable.set()

    def take_all(self) -> list[ItemT]:
        """Every waiting item, oldest first (empty when none waits; see :attr:`closed`)."""
        items = self._items
        if not items:
            return []
        taken = list(items)
        items.clear()
        writable = self._writable
        if writable is not None:
            self._writable = None
            writable.set()
        return taken

    async def wait_readable(self) -> None:
        """Wait until an item waits or the channel is closed."""
        if self._items or self.closed:
            return
        self._readable = readable = anyio.Event()
        await readable.wait()


_EXHAUSTED: Final[Iterator[Any]] = iter(())


class _Ready:
    """An awaitable that is done at once (``await`` it: no suspension, no coroutine).

    Its ``__await__`` is the bound ``__iter__`` of one exhausted C iterator:
    awaiting it runs no Python frame and allocates nothing (a generator
    ``__await__`` cost a frame and a generator object per event).
    """

    __slots__ = ()

    __await__ = _EXHAUSTED.__iter__  # an exhausted iterator: what await needs


_READY: Final = cast(Awaitable[None], _Ready())
