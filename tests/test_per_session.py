"""The objects each session makes for itself: made cheaply, the same as the library's own."""

from __future__ import annotations

import uuid

import anyio
import anyio.lowlevel
import pytest

from conjure_async._per_session import new_id, new_lock, new_task_group


def test_a_session_id_is_a_uuid4_in_hex() -> None:
    """new_id() reads back as a version-4, RFC 4122 UUID, and ids differ."""
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == value


@pytest.mark.anyio
async def test_the_chat_lock_is_anyio_s_lock_that_does_not_yield_when_free() -> None:
    """new_lock() in a loop: the class anyio picks, a fast-acquire lock, each one distinct."""
    first, second = new_lock(), new_lock()
    assert type(first) is type(anyio.Lock(fast_acquire=True))
    assert first is not second
    async with first:
        assert first.locked()
        assert not second.locked()


def test_a_lock_made_outside_a_loop_works_in_one_later() -> None:
    """Outside an event loop new_lock() gives anyio's adapter, usable in a loop afterwards."""
    lock = new_lock()

    async def use() -> bool:
        async with lock:
            return lock.locked()

    assert anyio.run(use)


@pytest.mark.anyio
async def test_a_session_s_task_group_is_anyio_s() -> None:
    """new_task_group() gives anyio's task group class, a fresh one each time, that runs tasks."""

    first, second = new_task_group(), new_task_group()
    assert type(first) is type(anyio.create_task_group())
    assert first is not second
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    async with first:
        first.start_soon(work)
    assert ran == [1]


@pytest.mark.anyio
async def test_an_idle_session_opens_and_closes_without_yielding_to_the_loop() -> None:
    """Opening and closing a session that ran nothing takes no event-loop round trip."""
    from conjure_async import Session
    from conjure_async.testing import ScriptedModel, text_response

    ran: list[int] = []

    async def other() -> None:
        ran.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        async with Session(model=ScriptedModel([text_response("hi")])):
            pass
        assert ran == []  # the other task got no turn: nothing yielded
    assert ran == [1]


@pytest.mark.anyio
async def test_a_session_whose_background_task_failed_still_raises_it_at_close() -> None:
    """A failure left in the session's task group by an ended task is raised at close."""
    from conjure_async import Session
    from conjure_async.testing import ScriptedModel, text_response

    async def fail() -> None:
        raise LookupError("background work failed")

    with pytest.raises(BaseException) as caught:
        async with Session(model=ScriptedModel([text_response("hi")])) as session:
            assert session._tg is not None
            session._tg.start_soon(fail)
            with anyio.fail_after(10):
                # Until the task has ended (its failure stays in the group): anyio's own set.
                while session._tg._tasks:  # type: ignore[attr-defined]
                    await anyio.lowlevel.checkpoint()
    assert "background work failed" in repr(caught.value)
