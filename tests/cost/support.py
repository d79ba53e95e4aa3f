"""A tool-calling agent for the fake server, and what the tests read from its requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conjure_async.backends import NativeBackend, tool

SYSTEM = "You are a careful operations agent. Check every service, then report. " * 80
"""A system prompt long enough to be cached on its own (about 1,400 tokens)."""


def lookup_backend(size: int = 400) -> NativeBackend:
    """A native ``lookup`` tool answering ``size`` characters per call."""

    @tool
    async def lookup(item: int) -> str:
        """Look an item up in the inventory."""
        return f"item {item}: " + "x" * size

    return NativeBackend(lookup)


def tool_loop(calls: int, *, per_response: int = 1) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A fake-server answer: ``calls`` lookups, ``per_response`` at a time, then a summary.

    The calls made are counted from the results in the request, or from the
    calls this answer issued when more (a request cut at a compaction block
    carries only the results after it).
    """
    issued = [0]

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        results = sum(
            1
            for message in body["messages"]
            if message["role"] == "user" and isinstance(message["content"], list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        )
        done = max(results, issued[0])
        if done >= calls:
            return {
                "content": [{"type": "text", "text": f"Checked {done} items."}],
                "stop_reason": "end_turn",
            }
        batch = range(done, min(done + per_response, calls))
        issued[0] = batch.stop
        return {
            "content": [
                {"type": "tool_use", "id": f"toolu_{i:05d}", "name": "lookup", "input": {"item": i}}
                for i in batch
            ],
            "stop_reason": "tool_use",
        }

    return answer


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where a request body's ``cache_control`` markers are, in render order."""
    found = [f"tool:{t.get('name')}" for t in body.get("tools") or () if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += ["system" for block in system if "cache_control" in block]
    for index, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, list):
            found += [f"message:{index}" for block in content if "cache_control" in block]
    return found
