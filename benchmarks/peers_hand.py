"""The baseline: a hand-written, dict-only tool loop doing the same work as a session.

It calls the same model, runs the same trivial tool and keeps the history
as plain dicts; it has no hooks, timeouts, events, validation or cleanup.
It hands the model its own history list, not a copy: the benchmarks'
models keep nothing of a request, so nothing can see the list change (a
session hands its history out copy-on-write, which costs the same here).
What a session costs over it is the price of those guarantees.
"""

from __future__ import annotations

from typing import Any

import anyio

from benchmarks.peers_common import FINAL_TEXT, PROMPT, TOOL_NAME
from benchmarks.peers_conjure import SleepyModel

TOOLS = [{"name": TOOL_NAME, "input_schema": {"type": "object"}}]


class _Request:
    """What the shared model reads of a request: its messages."""

    __slots__ = ("messages",)

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages


async def _noop(arguments: dict[str, Any]) -> str:
    return "ok"


async def loop(model: Any, prompt: str = PROMPT) -> str:
    """One conversation: call the model, run each tool call, until it answers with text."""
    history: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    while True:
        response = await model(_Request(history))
        history.append({"role": "assistant", "content": response.content})
        uses = response.tool_uses
        if not uses:
            return str(response.text)
        history.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": u.id, "content": await _noop(u.input)}
                    for u in uses
                ],
            }
        )


async def concurrent(sessions: int, calls: int, delay: float, *, fresh: bool = True) -> None:
    """``sessions`` concurrent hand loops of ``calls`` tool calls on the shared sleeping model."""
    model = SleepyModel(calls, delay, fresh=fresh)
    failures: list[str] = []

    async def one() -> None:
        text = await loop(model)
        if text != FINAL_TEXT:
            failures.append(text)

    async with anyio.create_task_group() as tg:
        for _ in range(sessions):
            tg.start_soon(one)
    if failures:
        raise RuntimeError(f"hand loop: {len(failures)} loops ended unexpectedly")
