"""``SessionStore.append``: only new messages written, and a load equal to the whole state.

Each test runs against the memory store, a SQLite file and a real PostgreSQL
server; the property test plays random appends, tail replacements and whole
rewrites against each, and the upgrade tests open tables written before the
message log (ADR 0019).
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conjure_async import ConversationConflictError, StoreError
from conjure_async.store import MemoryStore, PostgresStore, SessionStore, SQLiteStore

pytestmark = pytest.mark.anyio

_tables = itertools.count(1)


def message(n: int, text: str = "") -> dict[str, Any]:
    """A message whose content says which one it is (keys in a deliberate order)."""
    return {"role": "user" if n % 2 else "assistant", "content": f"m{n} {text}", "z": 1, "a": 2}


def state(messages: list[dict[str, Any]], **rest: Any) -> dict[str, Any]:
    """A session-like state: keys before and after the messages."""
    return {"version": 1, "session_id": "s", "messages": messages, "usage": {"n": 1}, **rest}


async def test_appended_messages_load_as_the_whole_state_with_its_key_order(
    store: SessionStore,
) -> None:
    """Whole, then two appends: the load equals the whole state, keys in their saved order."""
    v = await store.append("c", state([message(0), message(1)]), version=0, kept=0)
    v = await store.append("c", state([message(2)], turn={"t": 1}), version=v, kept=2)
    v = await store.append("c", state([message(3), message(4)]), version=v, kept=3)
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state, loaded.version) == (state([message(n) for n in range(5)]), 3)
    assert list(loaded.state) == ["version", "session_id", "messages", "usage"]
    assert [list(m) for m in loaded.state["messages"]] == [["role", "content", "z", "a"]] * 5


async def test_a_replaced_tail_is_cut_and_written_again(store: SessionStore) -> None:
    """kept below the stored count drops the stored tail: no stale message survives."""
    v = await store.append("c", state([message(n) for n in range(4)]), version=0, kept=0)
    v = await store.append("c", state([message(2, "replaced")]), version=v, kept=2)
    loaded = await store.load("c")
    assert loaded is not None
    assert loaded.state["messages"] == [message(0), message(1), message(2, "replaced")]


async def test_a_stale_append_raises_a_conflict_and_changes_nothing(store: SessionStore) -> None:
    """An append over an old version: a conflict carrying the caller's state; no change."""
    v = await store.append("c", state([message(0)]), version=0, kept=0)
    await store.append("c", state([message(1, "winner")]), version=v, kept=1)
    loser = state([message(1, "loser")])
    with pytest.raises(ConversationConflictError) as caught:
        await store.append("c", loser, version=v, kept=1)
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    assert caught.value.state == loser
    with pytest.raises(ConversationConflictError):
        await store.append("c", loser, version=0, kept=0)  # creating one that exists
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state["messages"], loaded.version) == ([message(0), message(1, "winner")], 2)


async def test_concurrent_appends_over_one_version_have_exactly_one_winner(
    store: SessionStore,
) -> None:
    """Ten appends race over version 1: one wins, the log holds its message only."""
    await store.append("c", state([message(0)]), version=0, kept=0)
    winners: list[int] = []

    async def write(n: int) -> None:
        try:
            await store.append("c", state([message(1, str(n))]), version=1, kept=1)
            winners.append(n)
        except ConversationConflictError:
            pass

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(write, n)
    loaded = await store.load("c")
    assert len(winners) == 1
    assert loaded is not None
    assert loaded.state["messages"] == [message(0), message(1, str(winners[0]))]


async def test_kept_beyond_the_stored_history_or_bad_messages_are_refused(
    store: SessionStore,
) -> None:
    """kept past the stored messages is a ValueError, messages not a list a TypeError; no change."""
    v = await store.append("c", state([message(0)]), version=0, kept=0)
    with pytest.raises(ValueError, match="kept=2"):
        await store.append("c", state([message(1)]), version=v, kept=2)
    with pytest.raises(ValueError, match="kept=1"):
        await store.append("new", state([message(1)]), version=0, kept=1)
    with pytest.raises(ValueError, match="kept must be"):
        await store.append("c", state([]), version=v, kept=-1)
    with pytest.raises(TypeError, match="as a list"):
        await store.append("c", {"messages": "no"}, version=v, kept=0)
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state, loaded.version) == (state([message(0)]), 1)
    assert await store.load("new") is None


async def test_a_whole_save_after_appends_and_an_append_after_a_whole_save(
    store: SessionStore,
) -> None:
    """save() replaces a logged history; append() over a whole-saved row keeps its messages."""
    v = await store.append("c", state([message(0), message(1)]), version=0, kept=0)
    v = await store.save("c", state([message(7)]), version=v)
    loaded = await store.load("c")
    assert loaded is not None
    assert loaded.state == state([message(7)])
    v = await store.append("c", state([message(8)]), version=v, kept=1)  # moves m7 to the log
    v = await store.append("c", state([message(9)]), version=v, kept=2)
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state, loaded.version) == (state([message(7), message(8), message(9)]), 4)


async def test_a_deleted_logged_conversation_leaves_no_messages_behind(
    store: SessionStore,
) -> None:
    """Delete, then a new conversation of the same id: none of the old messages come back."""
    v = await store.append("c", state([message(n) for n in range(3)]), version=0, kept=0)
    assert await store.delete("c", version=v)
    await store.append("c", state([message(5)]), version=0, kept=0)
    loaded = await store.load("c")
    assert loaded is not None
    assert loaded.state["messages"] == [message(5)]


# -- the property: any sequence of appends, cuts and rewrites loads equal ------

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3)),  # n new messages
        st.tuples(st.just("cut"), st.integers(0, 6), st.integers(0, 3)),  # keep k, add n
        st.tuples(st.just("whole_save"), st.integers(0, 4)),
        st.tuples(st.just("whole_append"), st.integers(0, 4)),
        st.tuples(st.just("stale"), st.integers(0, 2)),
        st.tuples(st.just("delete"), st.just(0)),
    ),
    max_size=12,
)


async def _play(store: SessionStore, operations: list[tuple[Any, ...]]) -> None:
    """Play the operations; after each, the store loads the model's whole state."""
    expected: list[dict[str, Any]] = []
    version, fresh = 0, itertools.count()
    for op in operations:
        kind = op[0]
        new = [message(next(fresh), kind) for _ in range(op[-1])]
        rest = {"turn": {"op": kind, "n": len(expected)}}
        if kind == "append":
            version = await store.append(
                "c", state(new, **rest), version=version, kept=len(expected)
            )
            expected = expected + new
        elif kind == "cut":
            kept = min(op[1], len(expected))
            version = await store.append("c", state(new, **rest), version=version, kept=kept)
            expected = expected[:kept] + new
        elif kind == "whole_save":
            version = await store.save("c", state(new, **rest), version=version)
            expected = new
        elif kind == "whole_append":
            version = await store.append("c", state(new, **rest), version=version, kept=0)
            expected = new
        elif kind == "stale":
            with pytest.raises(ConversationConflictError):
                await store.append("c", state(new, **rest), version=version + 1, kept=0)
            continue
        else:
            if version:
                await store.delete("c", version=version)
            version, expected = 0, []
            assert await store.load("c") is None
            continue
        loaded = await store.load("c")
        assert loaded is not None
        assert loaded.version == version
        assert loaded.state == state(expected, **rest)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_any_sequence_of_appends_cuts_and_rewrites_loads_equal_to_the_whole_state(
    kind: str, operations: list[tuple[Any, ...]], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Random appends, replaced tails, whole saves, stale writes, deletes: each load is exact."""

    async def run() -> None:
        made: SessionStore
        if kind == "memory":
            made = MemoryStore()
        elif kind == "sqlite":
            made = SQLiteStore(tmp_path / f"p{next(_tables)}.db")
        else:
            made = PostgresStore(
                request.getfixturevalue("postgres_dsn"), table=f"prop_{next(_tables)}"
            )
        async with made:
            try:
                await _play(made, operations)
            finally:
                if isinstance(made, PostgresStore):
                    await _drop(request.getfixturevalue("postgres_dsn"), made.table)

    anyio.run(run)


async def _drop(dsn: str, table: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_messages")
    finally:
        await connection.close()


# -- tables written before the message log ------------------------------------

OLD_STATE = state([message(0), message(1)])


async def test_a_sqlite_file_from_before_the_log_loads_and_takes_appends(tmp_path: Path) -> None:
    """A table without the logged column gets it; its whole rows load, then take appends."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the table as the store created it before ADR 0019
        db.execute(
            "CREATE TABLE conjure_conversations (id TEXT PRIMARY KEY,"
            " version INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO conjure_conversations VALUES ('c', 3, ?, 1.0)",
            (__import__("json").dumps(OLD_STATE),),
        )
    db.close()
    async with SQLiteStore(path) as store:
        await _old_row_loads_and_grows(store)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT logged FROM conjure_conversations").fetchone() == (3,)
        assert db.execute("SELECT count(*) FROM conjure_conversations_messages").fetchone() == (3,)
    db.close()


async def test_a_postgres_table_from_before_the_log_loads_and_takes_appends(
    postgres_dsn: str,
) -> None:
    """The same for PostgreSQL: the column is added on first use, old rows load and grow."""
    import json

    import asyncpg

    table = f"old_{next(_tables)}"
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(
            f"CREATE TABLE {table} (id text PRIMARY KEY, version bigint NOT NULL,"
            " state text NOT NULL, updated_at double precision NOT NULL)"
        )
        await connection.execute(
            f"INSERT INTO {table} VALUES ('c', 3, $1, 1.0)", json.dumps(OLD_STATE)
        )
        async with PostgresStore(postgres_dsn, table=table) as store:
            await _old_row_loads_and_grows(store)
        assert await connection.fetchval(f"SELECT logged FROM {table}") == 3
    finally:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_messages")
        await connection.close()


async def test_a_sqlite_log_missing_rows_is_a_store_error(tmp_path: Path) -> None:
    """A row counting more messages than its log holds raises StoreError naming the conversation."""
    path = tmp_path / "c.db"
    async with SQLiteStore(path) as store:
        await store.append("c", state([message(0), message(1)]), version=0, kept=0)
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM conjure_conversations_messages WHERE seq = 1")
        db.close()
        with pytest.raises(StoreError, match="'c': 2 messages saved, 1 found"):
            await store.load("c")


async def _old_row_loads_and_grows(store: SessionStore) -> None:
    """Conversation ``c`` saved whole before the log (version 3) loads, then takes an append."""
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state, loaded.version) == (OLD_STATE, 3)
    await store.append("c", state([message(2)]), version=3, kept=2)
    loaded = await store.load("c")
    assert loaded is not None
    assert (loaded.state, loaded.version) == (state([message(n) for n in range(3)]), 4)
