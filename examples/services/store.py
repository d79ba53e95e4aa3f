"""A store of live sessions for web services: one :class:`Session` per conversation.

Request handlers come and go; a conversation outlives them. The store keeps
each conversation's :class:`~conjure_async.Session` open between requests and
closes it once it has been idle longer than ``idle_ttl`` (which frees its work
directory, processes or container).

Why each session lives in a task of its own: a ``Session`` is an async context
manager that owns a task group, and anyio requires a task group (a cancel
scope) to be entered and exited by the *same* task. A request handler cannot
open a session and leave it for the next request to close. So the store owns a
task group, and every session is opened, held and closed by one long-lived
task in it::

    host task:      async with Session(...) as session:   # opened here
                        ready.set()
                        await close_requested.wait()      # idle TTL, shutdown
                    # closed here, by the same task

    request task:   async with store.session(conversation_id, tenant=t) as session:
                        reply = await session.chat(text)  # runs in the request task

``chat()`` runs in the calling task, so cancelling the request (a client that
disconnects) cancels the chat and kills its tools; ``stream()`` does the same
when its iteration is cancelled or closed.

Per-tenant concurrency: each tenant has an :class:`anyio.CapacityLimiter` of
``tenant_limit`` slots; one slot is held for the whole of a chat. When all are
taken, a new chat waits up to ``tenant_wait`` seconds (default 0: not at all)
and then fails with :class:`TenantBusyError`, which the web examples turn into
``429 Too Many Requests`` with a ``Retry-After`` header. Rejecting rather than
queueing keeps a busy tenant from holding open connections without bound.

Conversations are keyed by ``(tenant, conversation_id)``: one tenant can
neither read nor continue another tenant's conversation.

This store keeps *live* sessions (open backends, work directories) in one
process. What survives the process is the conversation itself: the session
factory binds each session to a :mod:`conjure_async.store` store (SQLite by
default in the examples), under :func:`conversation_key`. A restarted
service, or another worker process, opens a new session on the same key and
the conversation goes on (see ``docs/conversations.md``).

Use the store as an async context manager, entered and exited in one task (a
FastAPI lifespan, or the coroutine that runs an aiohttp ``AppRunner``)::

    async with SessionStore(make_session, idle_ttl=600, tenant_limit=4) as store:
        ...  # serve requests that call store.session(...)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from conjure_async import Session

__all__ = [
    "ConversationNotFoundError",
    "SessionFactory",
    "SessionStore",
    "StoreClosedError",
    "TenantBusyError",
    "conversation_key",
]

SessionFactory = Callable[[str], Session[Any]]
"""Builds the (unopened) session of a conversation, given its key (:func:`conversation_key`)."""


def conversation_key(tenant: str, conversation_id: str) -> str:
    """The key of a tenant's conversation in a conversation store (no two pairs share one)."""
    return json.dumps([tenant, conversation_id], ensure_ascii=False, separators=(",", ":"))


_log = logging.getLogger("examples.services")


class TenantBusyError(Exception):
    """A tenant already runs as many chats as it may (HTTP 429)."""

    def __init__(self, tenant: str, limit: int) -> None:
        super().__init__(f"tenant {tenant!r} already runs {limit} chat(s); retry later")
        self.tenant = tenant
        self.limit = limit


class ConversationNotFoundError(LookupError):
    """No open session for this conversation (never started, or closed as idle)."""


class StoreClosedError(RuntimeError):
    """The store is not open (used outside ``async with`` or after shutdown)."""


@dataclass(eq=False)
class _Entry:
    """One conversation: its session and the task that hosts it."""

    key: tuple[str, str]
    session: Session[Any] | None = None
    active: int = 0
    """Requests using the session right now (the TTL never closes an active one)."""
    last_used: float = 0.0
    closing: bool = False
    ready: anyio.Event = field(default_factory=anyio.Event)
    close_requested: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)


class SessionStore:
    """Live sessions per ``(tenant, conversation id)``, with idle TTL and tenant limits.

    Args:
        session_factory: Builds the session of a new conversation (not opened:
            the store opens it in the conversation's own task).
        idle_ttl: Seconds a conversation may stay unused before its session is
            closed (``math.inf``: never).
        tenant_limit: Chats one tenant may run at once.
        tenant_wait: Seconds a chat waits for a free tenant slot before
            :class:`TenantBusyError` (0: fail at once).
        sweep_interval: Seconds between idle checks (default: a quarter of
            ``idle_ttl``, at most 30).
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        idle_ttl: float = 600.0,
        tenant_limit: int = 4,
        tenant_wait: float = 0.0,
        sweep_interval: float | None = None,
    ) -> None:
        if idle_ttl <= 0 or tenant_limit < 1 or tenant_wait < 0:
            raise ValueError("idle_ttl and tenant_limit must be positive, tenant_wait >= 0")
        self._factory = session_factory
        self.idle_ttl = idle_ttl
        self.tenant_limit = tenant_limit
        self.tenant_wait = tenant_wait
        self.sweep_interval = sweep_interval or min(idle_ttl / 4, 30.0)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._tg: TaskGroup | None = None
        self._sweeper = anyio.CancelScope()

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise StoreClosedError("this SessionStore is already open")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        if math.isfinite(self.idle_ttl):
            tg.start_soon(self._sweep, name="session store: idle sweep")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        assert tg is not None, "SessionStore.__aexit__ without __aenter__"
        self._sweeper.cancel()
        for entry in list(self._entries.values()):
            self._request_close(entry)
        # Each host task now leaves its ``async with Session``: backends close.
        await tg.__aexit__(None, None, None)

    # -- using sessions --------------------------------------------------------

    @asynccontextmanager
    async def session(
        self, conversation_id: str, *, tenant: str = "default"
    ) -> AsyncIterator[Session[Any]]:
        """Use the conversation's session for one chat, opening it if new.

        Holds one of the tenant's slots until the block ends, and keeps the
        session from being closed as idle meanwhile. Chat in the block, from
        the calling task.

        Args:
            conversation_id: The conversation (any string).
            tenant: Who asks; limits and conversation ids are per tenant.

        Yields:
            The open session.

        Raises:
            TenantBusyError: The tenant has no free slot (after ``tenant_wait``).
            StoreClosedError: The store is not open.
            ConjureError: Opening a new session failed (e.g. a backend could not start).
        """
        limiter = self._limiters.get(tenant)
        if limiter is None:
            limiter = self._limiters[tenant] = anyio.CapacityLimiter(self.tenant_limit)
        token = object()  # the borrower: the slot is not tied to a task
        try:
            limiter.acquire_on_behalf_of_nowait(token)
        except anyio.WouldBlock:
            if self.tenant_wait <= 0:
                raise TenantBusyError(tenant, self.tenant_limit) from None
            with anyio.move_on_after(self.tenant_wait):
                await limiter.acquire_on_behalf_of(token)
            if token not in limiter.statistics().borrowers:
                raise TenantBusyError(tenant, self.tenant_limit) from None
        try:
            entry = await self._checkout((tenant, conversation_id), create=True)
            try:
                assert entry.session is not None
                yield entry.session
            finally:
                self._checkin(entry)
        finally:
            limiter.release_on_behalf_of(token)
            if limiter.borrowed_tokens == 0 and limiter.statistics().tasks_waiting == 0:
                self._limiters.pop(tenant, None)

    @asynccontextmanager
    async def existing(
        self, conversation_id: str, *, tenant: str = "default"
    ) -> AsyncIterator[Session[Any]]:
        """Use an already open session without opening one or taking a tenant slot.

        For reads such as file downloads; the session stays open until the
        block ends.

        Raises:
            ConversationNotFoundError: The conversation has no open session.
        """
        entry = await self._checkout((tenant, conversation_id), create=False)
        try:
            assert entry.session is not None
            yield entry.session
        finally:
            self._checkin(entry)

    async def close(self, conversation_id: str, *, tenant: str = "default") -> bool:
        """Close a conversation's session now (even while in use); return whether one was open."""
        entry = self._entries.get((tenant, conversation_id))
        if entry is None:
            return False
        self._request_close(entry)
        await entry.closed.wait()
        return True

    def conversations(self) -> list[tuple[str, str]]:
        """The ``(tenant, conversation_id)`` pairs with an open session."""
        return [k for k, e in self._entries.items() if e.ready.is_set() and not e.closing]

    def __len__(self) -> int:
        """Sessions opening, open or still closing."""
        return len(self._entries)

    # -- internals -------------------------------------------------------------

    async def _checkout(self, key: tuple[str, str], *, create: bool) -> _Entry:
        while True:
            tg = self._tg
            if tg is None:
                raise StoreClosedError("the SessionStore is not open")
            entry = self._entries.get(key)
            if entry is None:
                if not create:
                    raise ConversationNotFoundError(f"no open conversation {key[1]!r}")
                entry = self._entries[key] = _Entry(key)
                entry.active += 1  # the opener's use: the sweeper leaves it alone
                try:
                    await tg.start(self._host, entry, name=f"session host {key[1]}")
                except BaseException:
                    entry.active -= 1
                    self._forget(entry)
                    self._request_close(entry)  # in case the host opens after all
                    raise
                return entry
            if entry.closing:
                await entry.closed.wait()  # closing as idle: wait, then open anew
                continue
            if not entry.ready.is_set():
                await entry.ready.wait()  # another request is opening it
                continue
            entry.active += 1  # no await since the check: the sweeper cannot interleave
            return entry

    def _checkin(self, entry: _Entry) -> None:
        entry.active -= 1
        entry.last_used = anyio.current_time()

    async def _host(self, entry: _Entry, *, task_status: TaskStatus[None]) -> None:
        """Open, hold and close one session, all in this task.

        A failure to open reaches the request that opened it (through
        ``TaskGroup.start``); a failure while closing is logged, so that one
        conversation cannot bring down the store's task group.
        """
        started = False
        try:
            session = self._factory(conversation_key(*entry.key))
            async with session:
                entry.session = session
                entry.last_used = anyio.current_time()
                entry.ready.set()
                task_status.started()
                started = True
                _log.debug("conversation %r of tenant %r opened", entry.key[1], entry.key[0])
                await entry.close_requested.wait()
        except Exception as exc:
            if not started:
                raise
            _log.error("closing conversation %r failed: %r", entry.key[1], exc)
        finally:
            self._forget(entry)
            entry.ready.set()  # wake waiters of a failed open; they retry
            entry.closed.set()
            _log.debug("conversation %r of tenant %r closed", entry.key[1], entry.key[0])

    def _request_close(self, entry: _Entry) -> None:
        entry.closing = True
        entry.close_requested.set()

    def _forget(self, entry: _Entry) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    async def _sweep(self) -> None:
        with self._sweeper:
            while True:
                await anyio.sleep(self.sweep_interval)
                now = anyio.current_time()
                for entry in list(self._entries.values()):
                    idle = now - entry.last_used
                    if entry.closing or not entry.ready.is_set() or entry.active:
                        continue
                    if idle >= self.idle_ttl:
                        _log.debug("conversation %r idle for %.1fs: closing", entry.key[1], idle)
                        self._request_close(entry)
