"""Killing a bound session's process mid-turn, and reading the results a history holds."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from conjure_async.messages import Message, ToolResultBlock
from conjure_async.store import SQLiteStore
from tests.helpers import wait_for_file


async def kill_once_saved(
    script: str, db: Path, marker: Path, saved: Callable[[dict[str, Any]], bool]
) -> None:
    """Run ``script db marker``; once it hangs and its stored state passes ``saved``, SIGKILL it."""
    process = await anyio.open_process([sys.executable, "-c", script, str(db), str(marker)])
    try:
        await wait_for_file(marker, timeout=60)
        async with SQLiteStore(db) as store:
            with anyio.fail_after(30):
                while True:
                    row = await store.load("c")
                    if row is not None and saved(row.state):
                        break
                    await anyio.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()


def tool_results(history: Sequence[Message]) -> list[tuple[str, Any, bool | None]]:
    """Each ``tool_result`` in ``history``: its call id, content and error flag."""
    return [
        (b.tool_use_id, b.content, b.is_error)
        for m in history
        if isinstance(m.content, list)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    ]
