"""Every session store keeps the same promises: versions, conflicts, nothing lost.

Each test runs against the memory store, a SQLite file and a real PostgreSQL
server (started by the fixture when none is configured).
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from conjure_async import ConversationConflictError, StoreError
from conjure_async.store import SessionStore

pytestmark = pytest.mark.anyio

STATE: dict[str, Any] = {
    "version": 1,
    "messages": [
        {"role": "user", "content": 'Grüße, 世界 — "quoted" \\ backslash'},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {"b": 1, "a": 2}}],
        },
    ],
}


async def test_a_new_conversation_is_saved_as_version_1_and_loads_back_equal(
    store: SessionStore,
) -> None:
    """load() is None before the first save; the saved state loads back equal, version 1."""
    assert await store.load("c1") is None
    assert await store.save("c1", STATE, version=0) == 1
    loaded = await store.load("c1")
    assert loaded is not None
    assert (loaded.conversation_id, loaded.state, loaded.version) == ("c1", STATE, 1)
    assert loaded.updated_at > 0


async def test_object_key_order_survives_a_round_trip(store: SessionStore) -> None:
    """A tool input's keys keep their order (a reordered resend breaks the prompt cache)."""
    await store.save("c1", STATE, version=0)
    loaded = await store.load("c1")
    assert loaded is not None
    tool_input = loaded.state["messages"][1]["content"][0]["input"]
    assert list(tool_input) == ["b", "a"]


async def test_each_save_names_the_version_it_read_and_gets_the_next(store: SessionStore) -> None:
    """Versions count saves: 1, 2, 3."""
    versions = [await store.save("c1", {"n": 1}, version=0)]
    versions.append(await store.save("c1", {"n": 2}, version=versions[-1]))
    versions.append(await store.save("c1", {"n": 3}, version=versions[-1]))
    loaded = await store.load("c1")
    assert versions == [1, 2, 3]
    assert loaded is not None
    assert (loaded.state, loaded.version) == ({"n": 3}, 3)


async def test_a_stale_save_raises_a_conflict_and_changes_nothing(store: SessionStore) -> None:
    """The loser of two writers gets ConversationConflictError; the winner's state stays."""
    await store.save("c1", {"who": "first"}, version=0)
    await store.save("c1", {"who": "winner"}, version=1)
    with pytest.raises(ConversationConflictError) as caught:
        await store.save("c1", {"who": "loser"}, version=1)
    error = caught.value
    assert (error.conversation_id, error.expected_version, error.actual_version) == ("c1", 1, 2)
    assert error.state == {"who": "loser"}  # the loser's work is not lost either
    assert "load it again" in str(error)
    loaded = await store.load("c1")
    assert loaded is not None
    assert (loaded.state, loaded.version) == ({"who": "winner"}, 2)


async def test_creating_a_conversation_that_exists_is_a_conflict(store: SessionStore) -> None:
    """version=0 means "new": a second creator loses."""
    await store.save("c1", {"who": "first"}, version=0)
    with pytest.raises(ConversationConflictError, match="expected version 0, the store has 1"):
        await store.save("c1", {"who": "second"}, version=0)


async def test_saving_over_a_version_that_never_existed_is_a_conflict(store: SessionStore) -> None:
    """A writer cannot resurrect a deleted conversation by naming its old version."""
    with pytest.raises(ConversationConflictError) as caught:
        await store.save("gone", {"x": 1}, version=4)
    assert caught.value.actual_version == 0
    assert await store.load("gone") is None


async def test_concurrent_saves_over_one_version_have_exactly_one_winner(
    store: SessionStore,
) -> None:
    """Ten writers race over version 1: one saves, nine get conflicts."""
    await store.save("c1", {"n": 0}, version=0)
    outcomes: list[str] = []

    async def write(n: int) -> None:
        try:
            await store.save("c1", {"n": n}, version=1)
            outcomes.append("won")
        except ConversationConflictError:
            outcomes.append("conflict")

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(write, n)
    assert sorted(outcomes) == ["conflict"] * 9 + ["won"]
    loaded = await store.load("c1")
    assert loaded is not None
    assert loaded.version == 2


async def test_delete_removes_and_a_versioned_delete_checks_the_version(
    store: SessionStore,
) -> None:
    """delete() says whether it existed; with a stale version it refuses and keeps the row."""
    await store.save("c1", {"x": 1}, version=0)
    with pytest.raises(ConversationConflictError):
        await store.delete("c1", version=7)
    assert await store.load("c1") is not None
    assert await store.delete("c1", version=1) is True
    assert await store.load("c1") is None
    assert await store.delete("c1") is False


async def test_list_gives_ids_by_prefix_sorted_and_limited(store: SessionStore) -> None:
    """list() filters by prefix (taken literally, no wildcards), sorts, limits."""
    for cid in ("acme:2", "acme:1", "globex:1", "acme%:3", "acme_x"):
        await store.save(cid, {}, version=0)
    assert await store.list(prefix="acme:") == ["acme:1", "acme:2"]
    assert await store.list(prefix="acme%") == ["acme%:3"]
    assert await store.list(limit=2) == ["acme%:3", "acme:1"]
    assert len(await store.list()) == 5


@pytest.mark.parametrize(
    "cid", ["'; DROP TABLE conjure_conversations; --", "a b/c?d", "é" * 512, "x\ny"]
)
async def test_hostile_ids_are_plain_keys(store: SessionStore, cid: str) -> None:
    """Quotes, SQL, slashes, newlines and long unicode ids are stored as given."""
    await store.save(cid, {"id": cid}, version=0)
    loaded = await store.load(cid)
    assert loaded is not None
    assert loaded.state == {"id": cid}
    assert await store.list() == [cid]


@pytest.mark.parametrize("cid", ["", "x" * 513, "a\x00b"])
async def test_unusable_ids_are_refused_with_a_clear_error(store: SessionStore, cid: str) -> None:
    """Empty, overlong and NUL-carrying ids raise ValueError before touching the store."""
    with pytest.raises(ValueError, match="conversation id"):
        await store.save(cid, {}, version=0)


@pytest.mark.parametrize("state", [{"x": {1, 2}}, {"x": math.nan}, {"x": object()}])
async def test_a_state_that_is_not_json_is_refused_and_nothing_is_stored(
    store: SessionStore, state: dict[str, Any]
) -> None:
    """Sets, NaN and objects are a StoreError; the conversation stays as it was."""
    await store.save("c1", {"ok": True}, version=0)
    with pytest.raises(StoreError, match="not JSON"):
        await store.save("c1", state, version=1)
    loaded = await store.load("c1")
    assert loaded is not None
    assert (loaded.state, loaded.version) == ({"ok": True}, 1)


async def test_negative_versions_are_refused(store: SessionStore) -> None:
    """A version is a count of saves: never negative."""
    with pytest.raises(ValueError, match="non-negative"):
        await store.save("c1", {}, version=-1)


@pytest.mark.parametrize("version", [0, -1, True, False, 1.0, "1", [1]])
async def test_delete_refuses_invalid_versions_and_deletes_nothing(
    store: SessionStore, version: object
) -> None:
    """delete(version=0, negative, bool, non-int) is a ValueError on every store; nothing goes."""
    await store.save("c1", {"ok": True}, version=0)
    with pytest.raises(ValueError, match="version must be a positive integer"):
        await store.delete("c1", version=version)  # type: ignore[arg-type]  # hostile input
    with pytest.raises(ValueError, match="version must be a positive integer"):
        await store.delete("never-saved", version=version)  # type: ignore[arg-type]  # same
    loaded = await store.load("c1")
    assert loaded is not None
    assert (loaded.state, loaded.version) == ({"ok": True}, 1)
    assert await store.delete("c1", version=1)  # a valid version still deletes


async def test_a_closed_store_refuses_work_with_a_store_error(store: SessionStore) -> None:
    """After aclose(), a database store raises StoreError (a memory store has nothing to close)."""
    await store.save("c1", {}, version=0)
    await store.aclose()
    await store.aclose()  # idempotent
    if type(store).__name__ == "MemoryStore":
        return
    with pytest.raises(StoreError, match="closed"):
        await store.load("c1")
