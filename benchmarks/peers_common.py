"""Shared pieces of the peer benchmarks: the scripted conversation and measuring helpers.

Every runtime plays the same conversation: the user says "go"; the model
answers with one call of the tool ``noop(i: int)`` per response, ``n`` times,
then with the text "done". The tool is a trivial ``async def`` returning
"ok". The model is instant (or sleeps a fixed delay in the concurrency
scenario). Each runtime's fake model calls ``stamp()`` once per model call,
so the harness knows when every iteration happened.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOL_NAME = "noop"
TOOL_DESCRIPTION = "Do nothing and return ok."
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"i": {"type": "integer"}},
    "required": ["i"],
}
MODEL_NAME = "claude-sonnet-4-5"
PROMPT = "go"
FINAL_TEXT = "done"
USAGE = {"input_tokens": 10, "output_tokens": 5}


def call_id(i: int) -> str:
    """The id of the ``i``-th tool call (the same shape in every runtime)."""
    return f"toolu_{i:06d}"


def anthropic_message(i: int, n: int) -> dict[str, Any]:
    """The ``i``-th Messages API response of an ``n``-call conversation (a dict)."""
    if i < n:
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": call_id(i), "name": TOOL_NAME, "input": {"i": i}}
        ]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": FINAL_TEXT}]
        stop = "end_turn"
    return {
        "id": f"msg_{i:06d}",
        "type": "message",
        "role": "assistant",
        "model": MODEL_NAME,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": dict(USAGE),
    }


class Stamps:
    """Records when each model call happened; reports progress every ``every`` calls.

    Progress lines (JSON on stdout) let the parent process report how far a
    run got when it had to stop it at its time budget.
    """

    def __init__(self, *, every: int = 0) -> None:
        self.times: list[float] = []
        self.every = every
        self.start = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        self.times.append(now)
        count = len(self.times)
        if self.every and count % self.every == 0:
            emit({"progress": count - 1, "elapsed": now - self.start, "gaps": self.tail_gaps()})

    def tail_gaps(self, k: int = 10) -> list[float]:
        """The last ``k`` times between consecutive model calls."""
        t = self.times[-(k + 1) :]
        return [b - a for a, b in itertools.pairwise(t)]

    @property
    def gaps(self) -> list[float]:
        """Times between consecutive model calls (one per tool-call iteration)."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def emit(payload: dict[str, Any]) -> None:
    """Write one JSON line to stdout for the parent process."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


@dataclass
class RssProbe:
    """Resident set size from ``/proc`` (Linux), with a resettable peak."""

    available: bool = field(default_factory=lambda: Path("/proc/self/status").exists())

    def _status(self, key: str) -> int | None:
        if not self.available:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return None

    def current(self) -> int | None:
        """Bytes resident now."""
        return self._status("VmRSS")

    def peak(self) -> int | None:
        """Peak bytes resident since the last :meth:`reset_peak`."""
        return self._status("VmHWM")

    def reset_peak(self) -> bool:
        """Reset the kernel's peak RSS counter (``echo 5 > /proc/self/clear_refs``)."""
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True


def median(values: list[float]) -> float:
    """The median (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def buckets(values: list[float], count: int = 50) -> list[tuple[int, float]]:
    """Down-sample a per-iteration series to ``count`` (index, median) points."""
    if not values:
        return []
    size = max(len(values) // count, 1)
    return [
        (start + size // 2, median(values[start : start + size]))
        for start in range(0, len(values), size)
    ]


Conversation = Callable[[int, Stamps], Any]
"""``async (n, stamps) -> None``: play one ``n``-call conversation, stamping each model call."""
