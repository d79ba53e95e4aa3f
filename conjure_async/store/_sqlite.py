"""The embedded default store: one SQLite file, safe for several processes on one host.

The standard library's ``sqlite3`` runs in a worker thread (one connection
per store, one statement at a time), so the event loop never blocks on the
disk. Several processes may share the file (e.g. ``uvicorn --workers 2``):

* the journal is WAL (readers do not block the writer, nor it them);
* a writer that finds the file locked waits up to ``busy_timeout`` seconds;
* a save is ``BEGIN IMMEDIATE`` (the write lock taken first), then a version
  check, then the write: two processes saving over one version cannot both win.

Two tables: ``<table>`` holds a row per conversation (version, the state's
JSON) and ``<table>_messages`` a row per message of the conversations saved
by :meth:`SQLiteStore.append` (their row's ``logged`` column counts them and
their state holds ``"messages": null``); a row whose ``logged`` is NULL holds
its whole state, as :meth:`SQLiteStore.save` (and every version before the
log) wrote it. The tables and the ``logged`` column are created on first use.
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
    decode_state,
    encode_state,
    join_state,
    prepare_append,
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
        t, m = table, f"{table}_messages"
        # Every statement names only the checked identifier and its "_messages" table.
        self._sql = {
            "create": f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY,"
            " version INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,"
            " logged INTEGER)",
            "create_log": f"CREATE TABLE IF NOT EXISTS {m} (id TEXT NOT NULL,"
            " seq INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (id, seq))",
            "columns": f"PRAGMA table_info({t})",
            "add_logged": f"ALTER TABLE {t} ADD COLUMN logged INTEGER",
            "load": f"SELECT version, state, updated_at, logged FROM {t} WHERE id = ?",  # noqa: S608 - checked identifiers
            "load_log": f"SELECT message FROM {m} WHERE id = ? AND seq < ? ORDER BY seq",  # noqa: S608 - checked identifiers
            "version": f"SELECT version FROM {t} WHERE id = ?",  # noqa: S608 - checked identifiers
            "version_logged": f"SELECT version, logged FROM {t} WHERE id = ?",  # noqa: S608 - checked identifiers
            "state": f"SELECT state FROM {t} WHERE id = ?",  # noqa: S608 - checked identifiers
            "insert": f"INSERT INTO {t} (id, version, state, updated_at, logged)"  # noqa: S608 - checked identifiers
            " VALUES (?, 1, ?, ?, ?)",
            "update": f"UPDATE {t} SET version = ?, state = ?, updated_at = ?, logged = ?"  # noqa: S608 - checked identifiers
            " WHERE id = ?",
            "append_log": f"INSERT INTO {m} (id, seq, message) VALUES (?, ?, ?)",  # noqa: S608 - checked identifiers
            "cut_log": f"DELETE FROM {m} WHERE id = ? AND seq >= ?",  # noqa: S608 - checked identifiers
            "delete": f"DELETE FROM {t} WHERE id = ?",  # noqa: S608 - checked identifiers
            "list": f"SELECT id FROM {t} WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",  # noqa: S608 - checked identifiers
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
                self._create(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return db

    def _create(self, db: sqlite3.Connection) -> None:
        """The tables, and the ``logged`` column in a table made before the message log."""
        db.execute(self._sql["create"])
        db.execute(self._sql["create_log"])
        if not self._has_logged(db):
            with _write_lock(db):  # two processes upgrading at once: one adds it
                if not self._has_logged(db):
                    db.execute(self._sql["add_logged"])

    def _has_logged(self, db: sqlite3.Connection) -> bool:
        return any(row[1] == "logged" for row in db.execute(self._sql["columns"]))

    # -- the contract ------------------------------------------------------

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None``."""
        check_id(conversation_id)

        def read(db: sqlite3.Connection) -> tuple[int, str, float, list[str] | None] | None:
            db.execute("BEGIN")  # one snapshot of both tables
            try:
                row = db.execute(self._sql["load"], (conversation_id,)).fetchone()
                if row is None:
                    return None
                log = None
                if row[3] is not None:
                    found = db.execute(self._sql["load_log"], (conversation_id, row[3]))
                    log = [str(message) for (message,) in found]
                    if len(log) != row[3]:
                        raise StoreError(
                            f"conversation {conversation_id!r}: {row[3]} messages saved,"
                            f" {len(log)} found"
                        )
                return int(row[0]), str(row[1]), float(row[2]), log
            finally:
                db.execute("COMMIT")

        found = await self._run(read)
        if found is None:
            return None
        version, text, updated, log = found
        state = (
            decode_state(conversation_id, text)
            if log is None
            else join_state(conversation_id, text, log)
        )
        return StoredConversation(conversation_id, state, version, updated)

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
                db.execute(self._sql["cut_log"], (conversation_id, 0))
                self._write_row(db, conversation_id, version, text, None)
            return version + 1

        return self._saved(conversation_id, version, state, await self._run(write))

    async def append(
        self, conversation_id: str, state: Mapping[str, Any], *, version: int, kept: int
    ) -> int:
        """Save only what is new; see :meth:`SessionStore.append`."""
        rest, new = prepare_append(conversation_id, state, version, kept)

        def write(db: sqlite3.Connection) -> int:
            with _write_lock(db):
                row = db.execute(self._sql["version_logged"], (conversation_id,)).fetchone()
                actual = 0 if row is None else int(row[0])
                if actual != version:
                    db.execute("ROLLBACK")
                    return -actual - 1
                logged: int | None = 0 if row is None else row[1]
                if logged is None:  # saved whole: the kept messages move to the log
                    logged = self._log_whole(db, conversation_id, kept) if kept else 0
                if kept > logged:
                    raise ValueError(f"kept={kept}: the stored version has {logged} messages")
                db.execute(self._sql["cut_log"], (conversation_id, kept))
                db.executemany(
                    self._sql["append_log"],
                    ((conversation_id, kept + i, text) for i, text in enumerate(new)),
                )
                self._write_row(db, conversation_id, version, rest, kept + len(new))
            return version + 1

        return self._saved(conversation_id, version, state, await self._run(write))

    def _log_whole(self, db: sqlite3.Connection, conversation_id: str, kept: int) -> int:
        """Move the first ``kept`` messages of a state saved whole into the log; their count."""
        (text,) = db.execute(self._sql["state"], (conversation_id,)).fetchone()
        stored = decode_state(conversation_id, text).get("messages")
        messages = stored[:kept] if isinstance(stored, list) else []
        db.execute(self._sql["cut_log"], (conversation_id, 0))
        db.executemany(
            self._sql["append_log"],
            ((conversation_id, i, encode_state(m)) for i, m in enumerate(messages)),
        )
        return len(messages)

    def _write_row(
        self,
        db: sqlite3.Connection,
        conversation_id: str,
        version: int,
        text: str,
        logged: int | None,
    ) -> None:
        if version == 0:
            db.execute(self._sql["insert"], (conversation_id, text, time.time(), logged))
        else:
            db.execute(
                self._sql["update"], (version + 1, text, time.time(), logged, conversation_id)
            )

    @staticmethod
    def _saved(conversation_id: str, version: int, state: Mapping[str, Any], saved: int) -> int:
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
                    db.execute(self._sql["cut_log"], (conversation_id, 0))
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
