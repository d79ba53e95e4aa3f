"""The embedded default store: one SQLite file, safe for several processes on one host.

The standard library's ``sqlite3`` runs in a worker thread (one connection
per store, one statement at a time), so the event loop never blocks on the
disk. Several processes may share the file (e.g. ``uvicorn --workers 2``):

* the journal is WAL (readers do not block the writer, nor it them);
* a writer that finds the file locked waits up to ``busy_timeout`` seconds;
* a save is ``BEGIN IMMEDIATE`` (the write lock taken first), then a version
  check, then the write: two processes saving over one version cannot both win.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio

from conjure_async._exceptions import ConversationConflictError, StoreError
from conjure_async.store._base import (
    SessionStore,
    StoredConversation,
    check_delete_version,
    check_id,
    check_version,
    encode_state,
    from_row,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SQLiteStore(SessionStore):
    """Conversations in a SQLite file (created on first use, with its table).

    Args:
        path: The database file (its directory must exist).
        busy_timeout: Seconds a write waits for another process's lock
            before :class:`~conjure_async.StoreError`.
        table: The table's name.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        table: str = "conjure_conversations",
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
        if busy_timeout < 0:
            raise ValueError("busy_timeout must not be negative")
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.table = table
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._limiter = anyio.CapacityLimiter(1)  # one statement at a time on the connection
        t = table
        self._sql = {
            "create": f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY,"
            " version INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL)",
            "load": f"SELECT version, state, updated_at FROM {t} WHERE id = ?",  # noqa: S608 - table is a checked identifier
            "version": f"SELECT version FROM {t} WHERE id = ?",  # noqa: S608 - table is a checked identifier
            "insert": f"INSERT INTO {t} (id, version, state, updated_at) VALUES (?, 1, ?, ?)",  # noqa: S608 - table is a checked identifier
            "update": f"UPDATE {t} SET version = ?, state = ?, updated_at = ? WHERE id = ?",  # noqa: S608 - table is a checked identifier
            "delete": f"DELETE FROM {t} WHERE id = ?",  # noqa: S608 - table is a checked identifier
            "list": f"SELECT id FROM {t} WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",  # noqa: S608 - table is a checked identifier
        }

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- the worker thread -------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

        def call() -> T:
            try:
                return work(self._connect())
            except sqlite3.Error as exc:
                raise StoreError(f"{self!r}: {exc}") from exc

        # Not abandoned on cancellation: a save in progress finishes (or rolls back) first.
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # one worker thread at a time, by the limiter
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
                db.execute(self._sql["create"])
            except BaseException:
                db.close()
                raise
            self._db = db
        return db

    # -- the contract ------------------------------------------------------

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None``."""
        check_id(conversation_id)

        def read(db: sqlite3.Connection) -> tuple[int, str, float] | None:
            row = db.execute(self._sql["load"], (conversation_id,)).fetchone()
            return None if row is None else (int(row[0]), str(row[1]), float(row[2]))

        return from_row(conversation_id, await self._run(read))

    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        """Save over ``version``; see :meth:`SessionStore.save`."""
        check_id(conversation_id)
        check_version(version)
        text = encode_state(state)

        def write(db: sqlite3.Connection) -> int:
            with _write_lock(db):
                actual = self._version(db, conversation_id)
                if actual != version:
                    db.execute("ROLLBACK")
                    return -actual - 1  # a conflict, reported outside the thread
                if actual == 0:
                    db.execute(self._sql["insert"], (conversation_id, text, time.time()))
                else:
                    db.execute(
                        self._sql["update"], (version + 1, text, time.time(), conversation_id)
                    )
            return version + 1

        saved = await self._run(write)
        if saved < 0:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=-saved - 1, state=state
            )
        return saved

    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        """Delete; see :meth:`SessionStore.delete`."""
        check_id(conversation_id)
        check_delete_version(version)

        def remove(db: sqlite3.Connection) -> int:
            with _write_lock(db):
                actual = self._version(db, conversation_id)
                if actual and (version is None or version == actual):
                    db.execute(self._sql["delete"], (conversation_id,))
            return actual

        actual = await self._run(remove)
        if actual and version is not None and version != actual:
            raise ConversationConflictError(
                conversation_id, expected_version=version, actual_version=actual
            )
        return actual != 0

    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        """Saved ids starting with ``prefix``, sorted."""

        def ids(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(self._sql["list"], (len(prefix), prefix, limit)).fetchall()
            return [str(row[0]) for row in rows]

        return await self._run(ids)

    def _version(self, db: sqlite3.Connection, conversation_id: str) -> int:
        row = db.execute(self._sql["version"], (conversation_id,)).fetchone()
        return 0 if row is None else int(row[0])

    async def aclose(self) -> None:
        """Close the connection (idempotent); the file stays."""
        if self._closed:
            return
        self._closed = True
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(db.close, limiter=self._limiter)


@contextmanager
def _write_lock(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction that takes the write lock first (no check-then-write race), then commits.

    An error rolls it back; a block that rolled back itself commits nothing.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        if db.in_transaction:
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
