"""A session's state in and out: ``dump_state``, ``restore``, and a session bound to a store.

:func:`dump_session` writes the JSON of :meth:`Session.dump_state
<conjure_async.Session.dump_state>` (also in the middle of a turn: the turn
goes in as the engine dumps it); :func:`load_session` puts a state into a
session (a new one, or an open one whose conversation another process moved
on). A turn saved in the middle (a crash) is closed on load: the results
already in are kept, the calls without one are answered as cancelled, so the
history is valid. A turn stopped for approvals is kept as it is, waiting.

:class:`StoreBinding` ties a session to a conversation of a
:class:`~conjure_async.store.SessionStore`: loaded when the session opens,
reloaded before a chat when another writer saved since, saved after every
tool result and at the end of every turn, each save over the version read
(optimistic concurrency, see ``docs/adr/0012-conversation-store.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from conjure_async._engine import NOT_RUN_CANCELLED, TurnEngine
from conjure_async._exceptions import ConversationConflictError, SessionStateError
from conjure_async._history import repair_unanswered_calls
from conjure_async._state import STATE_VERSION, ParsedState, parse_state
from conjure_async._turn import TurnPhase, load_turn

if TYPE_CHECKING:
    from conjure_async._session import Session
    from conjure_async.store import SessionStore

__all__ = ["StoreBinding", "bind", "dump_session", "load_session"]

FINAL_SAVE_TIMEOUT = 30.0
"""Seconds the save at the end of a cancelled or failed turn may take (it is shielded)."""


def dump_session(session: Session[Any]) -> dict[str, Any]:
    """The session's state as JSON-able data (see :meth:`Session.dump_state`)."""
    engine = session._engine
    dumped = engine.dump()
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "session_id": session.session_id,
        "model_name": session.model_name,
        "messages": dumped["messages"],
        "usage": dumped["usage"],
        "files": dumped["files"],
        "backends": [{"kind": b.kind, "state": b.dump_state()} for b in session.backends],
        "meter": session._meter.dump(),  # cost, requests: a restored session keeps counting
    }
    if dumped["turn"] is not None:
        state["turn"] = dumped["turn"]
    return state


def load_session(session: Session[Any], state: ParsedState | dict[str, Any] | str) -> None:
    """Put ``state`` into ``session``: its history, usage, files, turn and backend states.

    Raises:
        SessionStateError: The state is malformed, or was saved with other backends.
    """
    parsed = state if isinstance(state, ParsedState) else parse_state(state)
    kinds = [b.kind for b in session.backends]
    saved_kinds = [kind for kind, _ in parsed.backends]
    if kinds != saved_kinds:
        raise SessionStateError(
            f"state was saved with backends {saved_kinds}, restored with {kinds}"
        )
    for b, (kind, backend_state) in zip(session.backends, parsed.backends, strict=True):
        try:
            b.load_state(backend_state)
        except SessionStateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionStateError(
                f"invalid session state: the {kind} backend state was refused: {exc}"
            ) from exc
    session._meter.load(parsed.meter)
    old = session._engine
    engine = TurnEngine(
        old.tools,
        max_iterations=old.max_iterations,
        max_pause_continuations=old.max_pause_continuations,
        usage=parsed.usage,
        files=parsed.files,
        require_approval=old.require_approval,
    )
    engine._history = parsed.messages
    if parsed.turn is None:
        repair_unanswered_calls(engine._history, NOT_RUN_CANCELLED)
    else:
        engine._turn = load_turn(parsed.turn)
        engine._phase = TurnPhase(parsed.turn["phase"])
        if engine._phase is not TurnPhase.AWAITING_APPROVAL:
            engine.cancel()  # saved mid-turn (a crash): keep the results, answer the rest
    session._engine = session._tools.engine = session._models.engine = engine


def bind(store: SessionStore | None, conversation_id: str | None) -> StoreBinding | None:
    """The binding of a session's options, or ``None`` without a store."""
    if store is None:
        if conversation_id is not None:
            raise ValueError("conversation_id needs a store (Session(..., store=...))")
        return None
    if not conversation_id:
        raise ValueError("a session with a store needs its conversation_id")
    return StoreBinding(store, conversation_id)


class StoreBinding:
    """A session's conversation in a store, and the version it last read or wrote."""

    __slots__ = ("_lock", "conversation_id", "store", "version")

    def __init__(self, store: SessionStore, conversation_id: str) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.version = 0
        """The stored version this session holds (0: never saved)."""
        self._lock = anyio.Lock()

    async def load(self, session: Session[Any]) -> None:
        """Load the conversation into a session being opened (nothing when it is new)."""
        row = await self.store.load(self.conversation_id)
        if row is not None:
            load_session(session, row.state)
            self.version = row.version

    async def refresh(self, session: Session[Any]) -> None:
        """Before a chat: take what another writer saved since this session last did."""
        row = await self.store.load(self.conversation_id)
        if row is None:
            if self.version:  # deleted by someone else: the conversation starts over
                engine = session._engine
                session._engine = session._tools.engine = session._models.engine = TurnEngine(
                    engine.tools,
                    max_iterations=engine.max_iterations,
                    max_pause_continuations=engine.max_pause_continuations,
                    require_approval=engine.require_approval,
                )
                self.version = 0
            return
        if row.version != self.version:
            load_session(session, row.state)
            self.version = row.version

    async def save(self, session: Session[Any]) -> None:
        """Save the session's state over the version it holds.

        Raises:
            ConversationConflictError: Another writer saved first (nothing changed).
        """
        async with self._lock:
            self.version = await self.store.save(
                self.conversation_id, dump_session(session), version=self.version
            )

    async def save_after(self, session: Session[Any], error: BaseException | None) -> None:
        """The save at a turn's end; after a failure or cancellation, shielded and quiet.

        After a conflict nothing is saved (the store holds the other writer's
        turn; this one is on the error). A failing save after a failed turn
        is logged, so the turn's own error is the one raised.
        """
        if error is None:
            await self.save(session)
            return
        if isinstance(error, ConversationConflictError):
            return
        with anyio.move_on_after(FINAL_SAVE_TIMEOUT, shield=True):
            try:
                await self.save(session)
            except Exception as exc:  # noqa: BLE001 - the turn's own error wins
                session._log.error(
                    "store.save_failed", conversation_id=self.conversation_id, error=repr(exc)
                )
