"""The channel between a streaming turn and its reader: order, back-pressure, closing."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from conjure_async._stream import LIMIT, EventChannel

pytestmark = pytest.mark.anyio


async def test_items_arrive_in_order_and_close_ends_the_stream() -> None:
    """A reader sees every item once, in order, then an empty closed channel."""
    channel: EventChannel[int] = EventChannel()
    seen: list[int] = []

    async def reader() -> None:
        while True:
            items = channel.take_all()
            if not items:
                if channel.closed:
                    return
                await channel.wait_readable()
                continue
            seen.extend(items)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        for i in range(200):
            await channel.put(i)
            if i % 7 == 0:
                await anyio.lowlevel.checkpoint()
        channel.close()
    assert seen == list(range(200))


async def test_the_writer_waits_for_room_only_at_the_limit() -> None:
    """LIMIT - 1 puts never wait; the LIMIT-th waits until the reader takes the items."""
    channel: EventChannel[int] = EventChannel()
    for i in range(LIMIT - 1):
        await channel.put(i)  # no reader at all: none of these may block
    blocked = anyio.Event()
    done = anyio.Event()

    async def writer() -> None:
        blocked.set()
        await channel.put(LIMIT - 1)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await blocked.wait()
        await anyio.lowlevel.checkpoint()
        assert not done.is_set()
        assert channel.take_all() == list(range(LIMIT))
        with anyio.fail_after(5):
            await done.wait()


async def test_a_reader_waiting_on_a_closed_channel_wakes() -> None:
    """close() wakes a waiting reader; it then finds nothing and a closed channel."""
    channel: EventChannel[int] = EventChannel()
    woke = anyio.Event()

    async def reader() -> None:
        await channel.wait_readable()
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.lowlevel.checkpoint()
        channel.close()
    assert woke.is_set()
    assert channel.take_all() == []
    assert channel.closed
