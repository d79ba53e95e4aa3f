"""The session store's contract: load, save, delete and list conversations by id.

A conversation is saved as the JSON of :meth:`Session.dump_state
<conjure_async.Session.dump_state>` (history, usage, files, backend state and
a turn stopped for approvals) with a **version**: 1 on the first save, one
more on each save after. A save names the version it read; when the store
holds another one, some other writer saved in between and the save fails with
:class:`~conjure_async.ConversationConflictError`, changing nothing
(optimistic concurrency: no locks held between requests).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import StoreError

__all__ = ["SessionStore", "StoredConversation", "decode_state", "encode_state", "from_row"]


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """A conversation as the store holds it."""

    conversation_id: str
    state: dict[str, Any]
    """The saved state (what :meth:`Session.dump_state` returned)."""
    version: int
    """1 after the first save, one more after each save."""
    updated_at: float
    """When it was last saved (seconds since the epoch)."""


class SessionStore(AsyncCloseable):
    """Where conversations outlive a process: load, save, delete and list by id.

    Every implementation keeps the same promises, checked by one test suite
    against each: a save that names a stale version changes nothing and
    raises :class:`~conjure_async.ConversationConflictError`; a saved state
    loads back equal; ids are any non-empty string up to 512 characters.

    Use a store as an async context manager (or call :meth:`aclose`), and
    bind sessions to it with ``Session(..., store=store, conversation_id=...)``.
    """

    @abc.abstractmethod
    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None`` when it was never saved (or was deleted).

        Raises:
            StoreError: The store failed, or holds data that is not a state.
        """

    @abc.abstractmethod
    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        """Save ``state`` over ``version`` (0: a new conversation); return the new version.

        Raises:
            ConversationConflictError: The store holds another version
                (another writer saved first); nothing was changed.
            StoreError: The store failed, or ``state`` is not JSON.
        """

    @abc.abstractmethod
    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        """Delete the conversation; return whether it existed.

        Args:
            conversation_id: The conversation.
            version: When given, delete only that version (else a
                :class:`~conjure_async.ConversationConflictError`).

        Raises:
            ValueError: ``version`` is not an ``int`` of 1 or more (a bool,
                0, negative), checked before the store is touched.
        """

    @abc.abstractmethod
    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        """Ids of saved conversations starting with ``prefix``, sorted, at most ``limit``."""


def check_id(conversation_id: str) -> str:
    """Refuse ids a store cannot key on (a clear error, not a database one)."""
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ValueError("a conversation id must be a non-empty string")
    if len(conversation_id) > 512 or "\x00" in conversation_id:
        raise ValueError("a conversation id must be at most 512 characters, without NUL")
    return conversation_id


def check_version(version: int, *, minimum: int = 0) -> int:
    """Refuse a version that is not an int of at least ``minimum`` (bools included)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        raise ValueError(f"version must be a {kind} integer, not {version!r}")
    return version


def check_delete_version(version: int | None) -> int | None:
    """A delete's version: ``None`` (any) or a stored version, 1 or more."""
    return None if version is None else check_version(version, minimum=1)


def encode_state(state: Mapping[str, Any]) -> str:
    """The state's JSON text (key order kept: cached prompts depend on it)."""
    try:
        return json.dumps(state, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the state is not JSON: {exc}") from exc


def decode_state(conversation_id: str, text: str | bytes) -> dict[str, Any]:
    """Parse stored JSON text; anything but an object is a :class:`StoreError`."""
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"conversation {conversation_id!r}: stored state is not JSON") from exc
    if not isinstance(state, dict):
        raise StoreError(f"conversation {conversation_id!r}: stored state is not a JSON object")
    return state


def from_row(conversation_id: str, row: tuple[int, str, float] | None) -> StoredConversation | None:
    """A stored ``(version, state text, updated)`` row as a conversation (``None`` stays)."""
    if row is None:
        return None
    version, text, updated = row
    return StoredConversation(
        conversation_id, decode_state(conversation_id, text), version, updated
    )
