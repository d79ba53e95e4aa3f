"""What only one store does: SQLite shared by real processes, PostgreSQL's secrets and servers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conjure_async import StoreError
from conjure_async.store import PostgresStore, SQLiteStore

pytestmark = pytest.mark.anyio

COUNTER = """
import sys, anyio
from conjure_async import ConversationConflictError
from conjure_async.store import {cls}

async def main(target, times):
    async with {cls}(target) as store:
        done = 0
        while done < times:
            row = await store.load("counter")
            state, version = (row.state, row.version) if row else ({{"n": 0}}, 0)
            try:
                await store.save("counter", {{"n": state["n"] + 1}}, version=version)
            except ConversationConflictError:
                continue  # another process saved first: read again, retry
            done += 1

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def _race(cls: str, target: str, processes: int, times: int) -> None:
    script = COUNTER.format(cls=cls)
    running = [
        subprocess.Popen([sys.executable, "-c", script, target, str(times)])
        for _ in range(processes)
    ]
    for process in running:
        assert process.wait(timeout=120) == 0


async def test_processes_sharing_one_sqlite_file_lose_no_update(tmp_path: Path) -> None:
    """Four processes each add 25 to one counter with load/save/retry: the file says 100."""
    path = tmp_path / "shared.db"
    _race("SQLiteStore", str(path), processes=4, times=25)
    async with SQLiteStore(path) as store:
        row = await store.load("counter")
    assert row is not None
    assert (row.state, row.version) == ({"n": 100}, 100)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_hosts_sharing_one_postgres_table_lose_no_update(postgres_dsn: str) -> None:
    """Four processes (standing in for hosts) each add 25 through PostgreSQL: it says 100."""
    async with PostgresStore(postgres_dsn) as store:
        await store.delete("counter")
    _race("PostgresStore", postgres_dsn, processes=4, times=25)
    async with PostgresStore(postgres_dsn) as store:
        row = await store.load("counter")
        await store.delete("counter")
    assert row is not None
    assert row.state == {"n": 100}


async def test_a_corrupt_sqlite_row_is_a_store_error_naming_the_conversation(
    tmp_path: Path,
) -> None:
    """A row whose state is not a JSON object raises StoreError, not a JSON crash."""
    path = tmp_path / "c.db"
    async with SQLiteStore(path) as store:
        await store.save("c1", {}, version=0)
        await store.save("c2", {}, version=0)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE conjure_conversations SET state = 'not json' WHERE id = 'c1'")
        db.execute("UPDATE conjure_conversations SET state = '[1]' WHERE id = 'c2'")
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match="'c1': stored state is not JSON"):
            await store.load("c1")
        with pytest.raises(StoreError, match="'c2': stored state is not a JSON object"):
            await store.load("c2")


async def test_an_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    """A file in a missing directory is a StoreError with the path, not sqlite3's exception."""
    async with SQLiteStore(tmp_path / "missing" / "c.db") as store:
        with pytest.raises(StoreError, match="unable to open database"):
            await store.load("c1")


async def test_a_busy_sqlite_file_waits_then_fails_with_a_store_error(tmp_path: Path) -> None:
    """Another process holding the write lock past busy_timeout: StoreError, nothing written."""
    path = tmp_path / "busy.db"
    async with SQLiteStore(path) as store:
        await store.save("c1", {"n": 1}, version=0)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        async with SQLiteStore(path, busy_timeout=0.2) as store:
            with pytest.raises(StoreError, match="locked"):
                await store.save("c1", {"n": 2}, version=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    async with SQLiteStore(path) as store:
        row = await store.load("c1")
    assert row is not None
    assert (row.state, row.version) == ({"n": 1}, 1)


async def test_a_postgres_password_never_shows_in_errors_or_reprs() -> None:
    """A DSN's password stays out of the repr and out of a connection error."""
    store = PostgresStore("postgresql://app:s3cret-pw@127.0.0.1:1/db", connect_timeout=2)
    async with store:
        with pytest.raises(StoreError) as caught:
            await store.load("c1")
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(store)


async def test_a_store_on_the_applications_pool_leaves_the_pool_open(postgres_dsn: str) -> None:
    """PostgresStore(pool=...) uses the app's pool and does not close it."""
    import asyncpg

    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        async with PostgresStore(pool=pool, table="app_pool_conversations") as store:
            await store.save("c1", {"x": 1}, version=0)
        assert await pool.fetchval("SELECT count(*) FROM app_pool_conversations") == 1
        await pool.execute("DROP TABLE app_pool_conversations")
    finally:
        await pool.close()


def test_a_table_name_must_be_an_identifier(tmp_path: Path) -> None:
    """Table names are SQL identifiers, checked: no injection through configuration."""
    with pytest.raises(ValueError, match="identifier"):
        SQLiteStore(tmp_path / "x.db", table="t; DROP TABLE y")
    with pytest.raises(ValueError, match="identifier"):
        PostgresStore("postgresql://x@127.0.0.1/db", table="t--")
