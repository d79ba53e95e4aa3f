"""Fixtures of the store tests: each store on real parts, and a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conjure_async.store import MemoryStore, PostgresStore, SessionStore, SQLiteStore
from tests.store.postgres import Postgres, find_or_start_postgres, stop_postgres
from tests.support.system import require

_tables = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server for this run (started when none is configured; skips only outside CI)."""
    found = require(find_or_start_postgres(), "PostgreSQL server")
    try:
        yield found
    finally:
        stop_postgres(found)


@pytest.fixture
def postgres_dsn(postgres_server: Postgres) -> str:
    return postgres_server.dsn


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    """Each store implementation, fresh (its own file or table)."""
    made: SessionStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "conversations.db")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        made = PostgresStore(dsn, table=f"conversations_{next(_tables)}")
    async with made:
        yield made
    if isinstance(made, PostgresStore):  # each test's table goes (the server may be shared)
        import asyncpg

        connection = await asyncpg.connect(request.getfixturevalue("postgres_dsn"))
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {made.table}")
        finally:
            await connection.close()
