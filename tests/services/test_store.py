"""SessionStore: one session per conversation, hosted in its own task."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from conjure_async import Session
from conjure_async._exceptions import BackendError
from conjure_async.testing import ScriptedModel, text_response
from examples.services import (
    ConversationNotFoundError,
    SessionStore,
    StoreClosedError,
    TenantBusyError,
    conversation_key,
)
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


class Recorder:
    """A session factory that records the sessions and backends it builds."""

    def __init__(self) -> None:
        self.backends: list[FuncBackend] = []
        self.conversations: list[str] = []

    def __call__(self, conversation_id: str) -> Session[Any]:
        backend = FuncBackend({})
        self.backends.append(backend)
        self.conversations.append(conversation_id)
        return Session(backend, model=ScriptedModel(lambda _: text_response("ok")))


async def test_a_conversation_reuses_its_session_across_uses() -> None:
    factory = Recorder()
    async with SessionStore(factory) as store:
        async with store.session("c1") as first:
            await first.chat("one")
        async with store.session("c1") as second:
            await second.chat("two")

    assert first is second
    assert factory.conversations == [conversation_key("default", "c1")]
    assert len(second.history) == 4


async def test_the_same_conversation_id_of_two_tenants_is_two_sessions() -> None:
    factory = Recorder()
    async with SessionStore(factory) as store:
        async with store.session("c1", tenant="acme") as acme:
            pass
        async with store.session("c1", tenant="globex") as globex:
            pass
        assert sorted(store.conversations()) == [("acme", "c1"), ("globex", "c1")]

    assert acme is not globex


async def test_concurrent_first_uses_open_one_session() -> None:
    factory = Recorder()
    seen: list[Session[Any]] = []

    async def use() -> None:
        async with store.session("c1") as session:
            seen.append(session)

    async with (
        SessionStore(factory, tenant_limit=5) as store,
        anyio.create_task_group() as tg,
    ):
        for _ in range(5):
            tg.start_soon(use)

    assert len(factory.conversations) == 1
    assert len({id(s) for s in seen}) == 1


async def test_closing_the_store_closes_every_session() -> None:
    factory = Recorder()
    async with SessionStore(factory) as store:
        for cid in ("a", "b", "c"):
            async with store.session(cid):
                pass
        assert all(b.closed == 0 for b in factory.backends)

    assert [(b.opened, b.closed) for b in factory.backends] == [(1, 1)] * 3
    assert len(store) == 0


async def test_sessions_are_opened_and_closed_outside_the_callers_task() -> None:
    """The store's host task owns each session, so a request task may end freely."""
    factory = Recorder()
    async with SessionStore(factory) as store:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_use_once, store, "c1")
        # the task that first used the session is gone; the session is still open
        assert store.conversations() == [("default", "c1")]
        assert factory.backends[0].closed == 0
    assert factory.backends[0].closed == 1


async def _use_once(store: SessionStore, cid: str) -> None:
    async with store.session(cid) as session:
        await session.chat("hi")


async def test_an_idle_session_is_closed_after_the_ttl() -> None:
    factory = Recorder()
    async with SessionStore(factory, idle_ttl=0.02, sweep_interval=0.005) as store:
        async with store.session("c1"):
            pass
        while len(store):  # noqa: ASYNC110 - the sweep sets no event
            await anyio.sleep(0.005)
        assert factory.backends[0].closed == 1

        async with store.session("c1") as fresh:  # a later message starts over
            assert fresh.history == []
    assert factory.conversations == [conversation_key("default", "c1")] * 2


async def test_a_full_tenant_is_refused_at_once_by_default() -> None:
    async with SessionStore(Recorder(), tenant_limit=1) as store, store.session("a"):
        with pytest.raises(TenantBusyError, match="'default' already runs 1 chat"):
            async with store.session("b"):
                pass
        async with store.session("b", tenant="other"):
            pass


async def test_a_tenant_slot_is_waited_for_up_to_tenant_wait() -> None:
    release = anyio.Event()
    order: list[str] = []

    async def hold() -> None:
        async with store.session("a"):
            order.append("first in")
            await release.wait()
        order.append("first out")

    async with (
        SessionStore(Recorder(), tenant_limit=1, tenant_wait=10) as store,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(_release_soon, release)
        async with store.session("b"):
            order.append("second in")

    assert order == ["first in", "first out", "second in"]


async def _release_soon(event: anyio.Event) -> None:
    await anyio.wait_all_tasks_blocked()
    event.set()


async def test_a_session_that_fails_to_open_raises_and_leaves_nothing() -> None:
    class Broken(FuncBackend):
        async def open(self, ctx: Any) -> None:
            raise BackendError("no engine")

    def factory(cid: str) -> Session[Any]:
        return Session(Broken({}), model=ScriptedModel([]))

    async with SessionStore(factory) as store:
        with pytest.raises(BackendError, match="no engine"):
            async with store.session("c1"):
                pass
        assert len(store) == 0


async def test_existing_does_not_open_a_session() -> None:
    factory = Recorder()
    async with SessionStore(factory) as store:
        with pytest.raises(ConversationNotFoundError):
            async with store.existing("c1"):
                pass
    assert factory.conversations == []


async def test_closing_one_conversation_closes_its_session_now() -> None:
    factory = Recorder()
    async with SessionStore(factory) as store:
        async with store.session("c1"):
            pass
        assert await store.close("c1") is True
        assert factory.backends[0].closed == 1
        assert await store.close("c1") is False


async def test_a_closed_store_refuses_sessions() -> None:
    store = SessionStore(Recorder())
    with pytest.raises(StoreClosedError):
        async with store.session("c1"):
            pass


def test_conversation_keys_of_distinct_pairs_never_collide() -> None:
    """Tenant and id are kept apart: ("a:b", "c") and ("a", "b:c") are two keys."""
    pairs = [("a:b", "c"), ("a", "b:c"), ('a"', "b"), ("a", '"b'), ("a", "b")]
    assert len({conversation_key(*pair) for pair in pairs}) == len(pairs)
