"""A session store in this process's memory (tests, single-process apps, demos)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from conjure_async._exceptions import ConversationConflictError
from conjure_async.store._base import (
    SessionStore,
    StoredConversation,
    check_delete_version,
    check_id,
    check_version,
    encode_state,
    from_row,
)

__all__ = ["MemoryStore"]


class MemoryStore(SessionStore):
    """Conversations kept in memory, as JSON text (so a saved state is never shared).

    Lost when the process ends; one process only. The same promises as the
    SQLite and PostgreSQL stores (versions, conflicts), so tests written
    against it hold for them.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, str, float]] = {}

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None``."""
        return from_row(conversation_id, self._rows.get(check_id(conversation_id)))

    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        """Save over ``version``; see :meth:`SessionStore.save`."""
        check_id(conversation_id)
        check_version(version)
        text = encode_state(state)
        current = self._rows.get(conversation_id)
        actual = current[0] if current is not None else 0
        if actual != version:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=actual, state=state
            )
        self._rows[conversation_id] = (version + 1, text, time.time())
        return version + 1

    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        """Delete; see :meth:`SessionStore.delete`."""
        current = self._rows.get(check_id(conversation_id))
        check_delete_version(version)
        if current is None:
            return False
        if version is not None and current[0] != version:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=current[0]
            )
        del self._rows[conversation_id]
        return True

    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        """Saved ids starting with ``prefix``, sorted."""
        return sorted(k for k in self._rows if k.startswith(prefix))[:limit]

    async def aclose(self) -> None:
        """Nothing to release (the conversations stay until the object is gone)."""
