"""A session store in this process's memory (tests, single-process apps, demos)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from conjure_async._exceptions import ConversationConflictError
from conjure_async.store._base import (
    SessionStore,
    StoredConversation,
    check_delete_version,
    check_id,
    check_version,
    decode_state,
    encode_state,
    join_state,
    prepare_append,
)

__all__ = ["MemoryStore"]


class _Row(NamedTuple):
    version: int
    text: str
    """The whole state; or, with a ``log``, the state with ``"messages": null``."""
    updated_at: float
    log: tuple[str, ...] | None
    """Each message's JSON (saved by :meth:`MemoryStore.append`), or ``None``."""


class MemoryStore(SessionStore):
    """Conversations kept in memory, as JSON text (so a saved state is never shared).

    Lost when the process ends; one process only. The same promises as the
    SQLite and PostgreSQL stores (versions, conflicts), so tests written
    against it hold for them.
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None``."""
        row = self._rows.get(check_id(conversation_id))
        if row is None:
            return None
        state = (
            decode_state(conversation_id, row.text)
            if row.log is None
            else join_state(conversation_id, row.text, list(row.log))
        )
        return StoredConversation(conversation_id, state, row.version, row.updated_at)

    def _check(self, conversation_id: str, version: int, state: Mapping[str, Any]) -> _Row | None:
        current = self._rows.get(conversation_id)
        actual = current.version if current is not None else 0
        if actual != version:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=actual, state=state
            )
        return current

    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        """Save over ``version``; see :meth:`SessionStore.save`."""
        check_id(conversation_id)
        check_version(version)
        text = encode_state(state)
        self._check(conversation_id, version, state)
        self._rows[conversation_id] = _Row(version + 1, text, time.time(), None)
        return version + 1

    async def append(
        self, conversation_id: str, state: Mapping[str, Any], *, version: int, kept: int
    ) -> int:
        """Save only what is new; see :meth:`SessionStore.append`."""
        rest, new = prepare_append(conversation_id, state, version, kept)
        current = self._check(conversation_id, version, state)
        old: tuple[str, ...] = ()
        if kept and current is not None:
            if current.log is None:  # saved whole: its messages become the log
                stored = decode_state(conversation_id, current.text).get("messages")
                old = tuple(encode_state(m) for m in stored) if isinstance(stored, list) else ()
            else:
                old = current.log
        if kept > len(old):
            raise ValueError(f"kept={kept}: the stored version has {len(old)} messages")
        log = old[:kept] + tuple(new)
        self._rows[conversation_id] = _Row(version + 1, rest, time.time(), log)
        return version + 1

    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        """Delete; see :meth:`SessionStore.delete`."""
        current = self._rows.get(check_id(conversation_id))
        check_delete_version(version)
        if current is None:
            return False
        if version is not None and current.version != version:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=current.version
            )
        del self._rows[conversation_id]
        return True

    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        """Saved ids starting with ``prefix``, sorted."""
        return sorted(k for k in self._rows if k.startswith(prefix))[:limit]

    async def aclose(self) -> None:
        """Nothing to release (the conversations stay until the object is gone)."""
