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
(optimistic concurrency, see ``docs/adr/0012-conversation-store.md``). A save
writes only the messages added since the binding's last save or load, with
:meth:`SessionStore.append <conjure_async.store.SessionStore.append>`; a
history that changed otherwise (restored, a replaced tail) is written whole
(``docs/adr/0019-incremental-saves.md``).
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
    from conjure_async.messages import Message
    from conjure_async.store import SessionStore

__all__ = ["StoreBinding", "bind", "dump_session", "load_session"]

FINAL_SAVE_TIMEOUT = 30.0
"""Seconds the save at the end of a cancelled or failed turn may take (it is shielded)."""


def dump_session(session: Session[Any], *, messages: bool = True) -> dict[str, Any]:
    """The session's state as JSON-able data (see :meth:`Session.dump_state`).

    With ``messages=False``, ``"messages"`` is ``None`` (an incremental save
    converts only the new messages).
    """
    dumped = session._engine.dump(messages=messages)
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


def dump_session_without_messages(session: Session[Any]) -> tuple[dict[str, Any], list[Message]]:
    """:func:`dump_session`'s state with ``"messages": None``, and the history it would hold.

    The history's messages are not converted (a save converts only the new ones).
    """
    history = list(session._engine._history)
    return dump_session(session, messages=False), history


def _kept(saved: list[Message] | None, history: list[Message]) -> int:
    """How many messages at the start of ``history`` are the saved ones (the same objects).

    History messages are never changed in place (a changed one is a new
    object), so the same object at the same place is the same message.
    """
    if saved is None:
        return 0
    kept = 0
    for old, new in zip(saved, history, strict=False):
        if old is not new:
            break
        kept += 1
    return kept


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

    __slots__ = ("_lock", "_saved", "conversation_id", "store", "version")

    def __init__(self, store: SessionStore, conversation_id: str) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.version = 0
        """The stored version this session holds (0: never saved)."""
        self._saved: list[Message] | None = None
        """The history as the store holds it at :attr:`version` (the message objects)."""
        self._lock = anyio.Lock()

    async def load(self, session: Session[Any]) -> None:
        """Load the conversation into a session being opened (nothing when it is new)."""
        row = await self.store.load(self.conversation_id)
        if row is not None:
            self._take(session, row.state, row.version)

    def _take(self, session: Session[Any], state: dict[str, Any], version: int) -> None:
        parsed = parse_state(state)
        stored = list(parsed.messages)  # before a mid-turn state is closed (new messages)
        load_session(session, parsed)
        self.version = version
        self._saved = stored

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
                self._saved = None
            return
        if row.version != self.version:
            self._take(session, row.state, row.version)

    async def save(self, session: Session[Any]) -> None:
        """Save the session's state over the version it holds.

        Raises:
            ConversationConflictError: Another writer saved first (nothing changed).
        """
        async with self._lock:
            state, history = dump_session_without_messages(session)
            kept = _kept(self._saved, history) if self.version else 0
            state["messages"] = [m.to_wire() for m in history[kept:]]
            try:
                self.version = await self.store.append(
                    self.conversation_id, state, version=self.version, kept=kept
                )
            except ConversationConflictError as exc:
                exc.state = dump_session(session)  # the whole unsaved state, not only the new part
                raise
            self._saved = history

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
