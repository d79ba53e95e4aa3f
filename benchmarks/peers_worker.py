"""Runs one peer measurement in a fresh process; prints JSON lines for ``bench_peers``.

``python -m benchmarks.peers_worker '<json spec>'``. A fresh process per
measurement keeps imports, caches and the allocator's state of one runtime
out of another's numbers, and makes peak RSS meaningful.

Spec keys: ``scenario`` (``conversation``, ``concurrent``, ``idle``),
``runtime`` (see :data:`RUNTIMES`), and the scenario's parameters.
Output: ``{"progress": ...}`` lines while a long conversation runs, then one
``{"result": {...}}`` line (or ``{"error": "..."}``).
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import sys
import time
import tracemalloc
from typing import Any

import anyio

from benchmarks.peers_common import RssProbe, Stamps, buckets, emit, median

RUNTIMES: dict[str, tuple[str, str, str]] = {
    # name: (module, conversation function, package it needs)
    "conjure_async": ("benchmarks.peers_conjure", "conversation", "conjure_async"),
    "pydantic-ai": ("benchmarks.peers_pydantic_ai", "conversation", "pydantic_ai"),
    "openai-agents": ("benchmarks.peers_openai_agents", "conversation", "agents"),
    "conjure_async AnthropicModel": (
        "benchmarks.peers_conjure",
        "http_conversation",
        "conjure_async",
    ),
    "anthropic SDK tool_runner (thread=False)": (
        "benchmarks.peers_anthropic_sdk",
        "conversation",
        "anthropic",
    ),
    "anthropic SDK tool_runner (message thread)": (
        "benchmarks.peers_anthropic_sdk",
        "thread_conversation",
        "anthropic",
    ),
}

CONCURRENT: dict[str, str] = {
    "hand loop": "benchmarks.peers_hand",
    "conjure_async": "benchmarks.peers_conjure",
    "pydantic-ai": "benchmarks.peers_pydantic_ai",
}


def _function(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


class Clock:
    """Time left before the parent's deadline for this process."""

    def __init__(self, deadline: float) -> None:
        self.start = time.perf_counter()
        self.deadline = deadline

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more work ends before the deadline."""
        return time.perf_counter() - self.start + seconds < self.deadline


async def conversation(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one runtime's ``n``-call conversation (best of a few), then its peak memory.

    Emits a ``partial`` result after each timed run, so a parent that stops
    the process at its deadline still has the runs that finished.
    """
    clock = Clock(spec.get("deadline", float("inf")))
    module, name, _ = RUNTIMES[spec["runtime"]]
    play = _function(module, name)
    n: int = spec["n"]
    budget: float = spec.get("budget", 5.0)
    max_reps: int = spec.get("max_reps", 5)
    rss = RssProbe()
    await play(min(n, 10), Stamps())  # warm up: imports, caches, first-call paths
    totals: list[float] = []
    best_gaps: list[float] = []
    result: dict[str, Any] = {}
    for rep in range(max_reps):
        if totals and (sum(totals) >= budget or not clock.fits(min(totals) * 1.5)):
            break
        gc.collect()
        stamps = Stamps(every=spec.get("progress_every", 0) if rep == 0 else 0)
        if rep == 0:
            base = rss.current()
            reset = rss.reset_peak()
        started = time.perf_counter()
        await play(n, stamps)
        total = time.perf_counter() - started
        if rep == 0:
            peak = rss.peak()
            rss_delta = max(peak - base, 0) if reset and base and peak else None
        if not totals or total < min(totals):
            best_gaps = stamps.gaps
        totals.append(total)
        tenth = max(len(best_gaps) // 10, 1)
        result = {
            "runtime": spec["runtime"],
            "n": n,
            "totals": totals,
            "per_iteration": min(totals) / n,
            "first_tenth": median(best_gaps[:tenth]),
            "last_tenth": median(best_gaps[-tenth:]),
            "series": buckets(best_gaps, 60),
            "rss_delta": rss_delta,
            "tracemalloc_peak": None,
        }
        emit({"partial": result})
    best = min(totals)
    # tracemalloc slows allocation-heavy code down about 2-3x.
    if (
        spec.get("memory", True)
        and best <= spec.get("memory_budget", 30.0)
        and clock.fits(best * 4)
    ):
        gc.collect()
        tracemalloc.start()
        try:
            await play(n, Stamps())
            result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return result


class CollectorClock:
    """A ``gc.callbacks`` entry timing the cyclic collector (and counting full collections)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.full += info["generation"] == 2


async def concurrent(spec: dict[str, Any]) -> dict[str, Any]:
    """Wall time and peak memory of many concurrent sessions with a sleeping model."""
    clock = Clock(spec.get("deadline", float("inf")))
    run = _function(CONCURRENT[spec["runtime"]], "concurrent")
    sessions: int = spec["sessions"]
    calls: int = spec["calls"]
    delay: float = spec["delay"]
    if "fresh" in spec:  # the model's answers: validated per call, or built once (ADR 0014)
        run = functools.partial(run, fresh=spec["fresh"])
    rss = RssProbe()
    await run(min(sessions, 20), calls, 0.0)  # warm up
    gc.collect()
    base = rss.current()
    reset = rss.reset_peak()
    collector = CollectorClock()
    gc.callbacks.append(collector)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        await run(sessions, calls, delay)
    finally:
        gc.callbacks.remove(collector)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = rss.peak()
    result: dict[str, Any] = {
        "runtime": spec["runtime"],
        "sessions": sessions,
        "calls": calls,
        "delay": delay,
        "wall": wall,
        "cpu": cpu,
        "gc": collector.seconds,
        "full_collections": collector.full,
        "ideal": calls * delay,
        "rss_per_session": max(peak - base, 0) / sessions if reset and peak and base else None,
        "tracemalloc_per_session": None,
        "tracemalloc_wall": None,
    }
    emit({"partial": result})
    if (
        spec.get("memory", True)
        and wall <= spec.get("memory_budget", 30.0)
        and clock.fits(wall * 4)
    ):
        gc.collect()
        tracemalloc.start()
        try:
            started = time.perf_counter()
            await run(sessions, calls, delay)
            result["tracemalloc_wall"] = time.perf_counter() - started
            result["tracemalloc_per_session"] = tracemalloc.get_traced_memory()[1] / sessions
        finally:
            tracemalloc.stop()
    return result


async def idle(spec: dict[str, Any]) -> dict[str, Any]:
    """Memory held by each open, idle conjure_async session (RSS pass, then tracemalloc pass)."""
    from benchmarks.peers_conjure import idle_sessions

    count: int = spec["count"]
    rss = RssProbe()
    async with idle_sessions(10):
        pass
    gc.collect()
    base = rss.current()
    async with idle_sessions(count):
        gc.collect()
        held = rss.current()
    rss_per = (held - base) / count if held is not None and base is not None else None
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with idle_sessions(count):
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return {
        "count": count,
        "rss_per_session": rss_per,
        "tracemalloc_per_session": traced / count,
    }


SCENARIOS = {"conversation": conversation, "concurrent": concurrent, "idle": idle}


def main(argv: list[str]) -> int:
    """Run the spec given as the first argument."""
    spec = json.loads(argv[1])
    try:
        result = anyio.run(SCENARIOS[spec["scenario"]], spec)
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
