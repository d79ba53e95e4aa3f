"""A store for several hosts: PostgreSQL through asyncpg (the ``[postgres]`` extra).

A save is one statement that checks the version and writes (``UPDATE ...
WHERE version = $n``, or an ``INSERT ... ON CONFLICT DO NOTHING`` for a new
conversation), so two writers saving over one version cannot both win,
whichever hosts they run on. The state is stored as ``text``, not ``jsonb``:
``jsonb`` reorders object keys, and a resent ``tool_use`` input whose keys
moved breaks the prompt cache.

:meth:`PostgresStore.append` keeps a conversation's messages a row each in
``<table>_messages`` (the conversation's row counts them in ``logged`` and
its state holds ``"messages": null``) and writes only the new ones, in one
transaction that first locks the conversation's row (``SELECT ... FOR
UPDATE``) and checks its version. A row whose ``logged`` is NULL holds its
whole state, as :meth:`PostgresStore.save` (and every version before the log)
wrote it. The log table and the column are created with the table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import anyio

from conjure_async._exceptions import ConversationConflictError, MissingDependencyError, StoreError
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

__all__ = ["PostgresStore"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class PostgresStore(SessionStore):
    """Conversations in a PostgreSQL table (created on first use).

    Args:
        dsn: A libpq connection string or URL (``postgresql://user@host/db``);
            never shown in reprs or errors (it may hold a password).
        pool: An asyncpg pool of the application's to use instead (not closed
            by :meth:`aclose`).
        table: The table's name.
        min_size: Connections the store's own pool keeps open.
        max_size: Connections the store's own pool may open.
        connect_timeout: Seconds to wait for a connection.

    Raises:
        MissingDependencyError: asyncpg is not installed
            (``pip install 'conjure-async[postgres]'``).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        table: str = "conjure_conversations",
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        try:
            import asyncpg  # noqa: PLC0415 - an optional extra
        except ImportError as exc:
            raise MissingDependencyError("asyncpg", "postgres") from exc
        if (dsn is None) == (pool is None):
            raise ValueError("give one of dsn and pool")
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
        self._asyncpg = asyncpg
        self._dsn = dsn
        self._pool: Any = pool
        self._own_pool = pool is None
        self._sizes = (min_size, max_size)
        self._connect_timeout = connect_timeout
        self.table = table
        self._ready = False
        self._closed = False
        self._lock = anyio.Lock()
        t, m = table, f"{table}_messages"
        # Every statement names only the checked identifier and its "_messages" table.
        self._sql = {
            "create": f"CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY,"
            " version bigint NOT NULL, state text NOT NULL, updated_at double precision NOT NULL,"
            " logged bigint)",
            "has_logged": "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid ="
            " to_regclass($1) AND attname = 'logged' AND NOT attisdropped)",
            "add_logged": f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS logged bigint",
            "create_log": f"CREATE TABLE IF NOT EXISTS {m} (id text NOT NULL,"
            " seq bigint NOT NULL, message text NOT NULL, PRIMARY KEY (id, seq))",
            # One statement, one snapshot: the row and its log.
            "load": f"SELECT version, state, updated_at, logged, ARRAY(SELECT message FROM {m}"  # noqa: S608 - checked identifiers
            f" WHERE {m}.id = {t}.id AND seq < {t}.logged ORDER BY seq) AS log"
            f" FROM {t} WHERE id = $1",
            # A whole save: the row, and no log (a data-modifying CTE runs in the statement).
            "insert": f"WITH saved AS (INSERT INTO {t} (id, version, state, updated_at)"  # noqa: S608 - checked identifiers
            " VALUES ($1, 1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING version),"
            f" cut AS (DELETE FROM {m} WHERE id = $1 AND EXISTS (SELECT 1 FROM saved))"
            " SELECT version FROM saved",
            "update": f"WITH saved AS (UPDATE {t} SET version = version + 1, state = $2,"  # noqa: S608 - checked identifiers
            " updated_at = $3, logged = NULL WHERE id = $1 AND version = $4 RETURNING version),"
            f" cut AS (DELETE FROM {m} WHERE id = $1 AND EXISTS (SELECT 1 FROM saved))"
            " SELECT version FROM saved",
            "version": f"SELECT version FROM {t} WHERE id = $1",  # noqa: S608 - checked identifiers
            "lock": f"SELECT version, logged FROM {t} WHERE id = $1 FOR UPDATE",  # noqa: S608 - checked identifiers
            "state": f"SELECT state FROM {t} WHERE id = $1",  # noqa: S608 - checked identifiers
            "insert_logged": f"INSERT INTO {t} (id, version, state, updated_at, logged)"  # noqa: S608 - checked identifiers
            " VALUES ($1, 1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING version",
            "update_logged": f"UPDATE {t} SET version = version + 1, state = $2,"  # noqa: S608 - checked identifiers
            " updated_at = $3, logged = $4 WHERE id = $1 RETURNING version",
            "cut_log": f"DELETE FROM {m} WHERE id = $1 AND seq >= $2",  # noqa: S608 - checked identifiers
            "append_log": f"INSERT INTO {m} (id, seq, message)"  # noqa: S608 - checked identifiers
            " SELECT $1, $2 + n - 1, message"
            " FROM unnest($3::text[]) WITH ORDINALITY AS x(message, n)",
            "delete": f"WITH gone AS (DELETE FROM {t} WHERE id = $1"  # noqa: S608 - checked identifiers
            " AND ($2::bigint IS NULL OR version = $2) RETURNING version),"
            f" cut AS (DELETE FROM {m} WHERE id = $1 AND EXISTS (SELECT 1 FROM gone))"
            " SELECT version FROM gone",
            "list": f"SELECT id FROM {t} WHERE left(id, $2) = $1 ORDER BY id LIMIT $3",  # noqa: S608 - checked identifiers
        }

    def __repr__(self) -> str:
        return f"PostgresStore(table={self.table!r})"

    async def _get_pool(self) -> Any:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        if self._ready:
            return self._pool
        async with self._lock:
            if not self._ready:
                try:
                    if self._pool is None:
                        self._pool = await self._asyncpg.create_pool(
                            self._dsn,
                            min_size=self._sizes[0],
                            max_size=self._sizes[1],
                            timeout=self._connect_timeout,
                        )
                    async with self._pool.acquire() as db, db.transaction():
                        # Two processes creating the table at once would race in the catalog.
                        await db.execute("SELECT pg_advisory_xact_lock(727431)")
                        await db.execute(self._sql["create"])
                        if not await db.fetchval(self._sql["has_logged"], self.table):
                            # A table made before the log (ALTER locks it: only when needed).
                            await db.execute(self._sql["add_logged"])
                        await db.execute(self._sql["create_log"])
                except (OSError, self._asyncpg.PostgresError) as exc:
                    raise self._error(exc) from None
                self._ready = True
        return self._pool

    def _error(self, exc: BaseException) -> StoreError:
        text = str(exc)
        if self._dsn:
            text = _PASSWORD.sub(r"\1[REDACTED]@", text)
        return StoreError(f"{self!r}: {type(exc).__name__}: {text}")

    async def _fetch(self, query: str, *args: Any) -> Any:
        pool = await self._get_pool()
        try:
            return await pool.fetchrow(self._sql[query], *args)
        except (OSError, self._asyncpg.PostgresError) as exc:
            raise self._error(exc) from exc

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None``."""
        row = await self._fetch("load", check_id(conversation_id))
        if row is None:
            return None
        logged, log = row["logged"], row["log"]
        if logged is None:
            state = decode_state(conversation_id, row["state"])
        elif len(log) != logged:
            raise StoreError(
                f"conversation {conversation_id!r}: {logged} messages saved, {len(log)} found"
            )
        else:
            state = join_state(conversation_id, row["state"], list(log))
        return StoredConversation(
            conversation_id, state, int(row["version"]), float(row["updated_at"])
        )

    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        """Save over ``version``; see :meth:`SessionStore.save`."""
        check_id(conversation_id)
        check_version(version)
        text = encode_state(state)
        if version == 0:
            row = await self._fetch("insert", conversation_id, text, time.time())
        else:
            row = await self._fetch("update", conversation_id, text, time.time(), version)
        if row is not None:
            return int(row["version"])
        current = await self._fetch("version", conversation_id)
        raise ConversationConflictError(
            conversation_id,
            expected_version=version,
            actual_version=int(current["version"]) if current is not None else 0,
            state=state,
        )

    async def append(
        self, conversation_id: str, state: Mapping[str, Any], *, version: int, kept: int
    ) -> int:
        """Save only what is new; see :meth:`SessionStore.append`."""
        rest, new = prepare_append(conversation_id, state, version, kept)
        pool = await self._get_pool()
        sql = self._sql
        try:
            async with pool.acquire() as db, db.transaction():
                row = await db.fetchrow(sql["lock"], conversation_id)
                actual = 0 if row is None else int(row["version"])
                logged = 0 if row is None else row["logged"]
                if actual == version and logged is None:  # saved whole: kept ones move to the log
                    logged = await self._log_whole(db, conversation_id, kept) if kept else 0
                if actual == version and kept > logged:
                    raise ValueError(f"kept={kept}: the stored version has {logged} messages")
                # The row first: one created since the lock is a conflict, nothing written.
                count, now = kept + len(new), time.time()
                saved = None
                if actual == version == 0:
                    saved = await db.fetchval(
                        sql["insert_logged"], conversation_id, rest, now, count
                    )
                elif actual == version:
                    saved = await db.fetchval(
                        sql["update_logged"], conversation_id, rest, now, count
                    )
                if saved is not None:
                    await db.execute(sql["cut_log"], conversation_id, kept)
                    if new:
                        await db.execute(sql["append_log"], conversation_id, kept, new)
                    return int(saved)
        except (OSError, self._asyncpg.PostgresError) as exc:
            raise self._error(exc) from exc
        current = await self._fetch("version", conversation_id)
        raise ConversationConflictError(
            conversation_id,
            expected_version=version,
            actual_version=int(current["version"]) if current is not None else 0,
            state=state,
        )

    async def _log_whole(self, db: Any, conversation_id: str, kept: int) -> int:
        """Move the first ``kept`` messages of a state saved whole into the log; their count."""
        text = await db.fetchval(self._sql["state"], conversation_id)
        stored = decode_state(conversation_id, text).get("messages")
        messages = [encode_state(m) for m in stored[:kept]] if isinstance(stored, list) else []
        await db.execute(self._sql["cut_log"], conversation_id, 0)
        await db.execute(self._sql["append_log"], conversation_id, 0, messages)
        return len(messages)

    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        """Delete; see :meth:`SessionStore.delete`."""
        check_id(conversation_id)
        check_delete_version(version)
        row = await self._fetch("delete", conversation_id, version)
        if row is not None:
            return True
        if version is None:
            return False
        current = await self._fetch("version", conversation_id)
        if current is None:
            return False
        raise ConversationConflictError(
            conversation_id, expected_version=version, actual_version=int(current["version"])
        )

    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        """Saved ids starting with ``prefix``, sorted."""
        pool = await self._get_pool()
        try:
            rows = await pool.fetch(self._sql["list"], prefix, len(prefix), limit)
        except (OSError, self._asyncpg.PostgresError) as exc:
            raise self._error(exc) from exc
        return [str(row["id"]) for row in rows]

    async def aclose(self) -> None:
        """Close the store's own pool (idempotent; an application's pool stays open)."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._own_pool:
            with anyio.CancelScope(shield=True):
                await pool.close()
