"""Many concurrent sessions against a dict-only hand loop, in one run.

``sessions`` sessions each chat once with ``calls`` tool calls; the shared
model sleeps ``delay`` per call (an API's latency), so the ideal wall time is
``calls x delay``. One event loop runs them all: the wall time cannot be less
than the CPU time of every iteration. Each measurement runs in a fresh
process (``benchmarks.peers_worker``) so peak RSS per session means
something; contenders alternate, round after round, and the median counts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks._targets import mark, record
from benchmarks.bench_peers import fmt_bytes, fmt_time, measure

CONTENDERS = ("hand loop", "conjure_async")


@dataclass(frozen=True)
class Config:
    """What to measure."""

    sessions: tuple[int, ...] = (1000, 5000)
    calls: int = 10
    delay: float = 0.05
    rounds: int = 5
    fresh_rounds: int = 3
    """Rounds of the rows whose model validates each answer (0: none)."""
    timeout: float = 180.0


FULL = Config()
QUICK = Config(sessions=(200, 1000), rounds=3, fresh_rounds=1, timeout=60.0)
TARGETS = {1000: 1.5, 5000: 3.0}
"""Wall time over the ideal that issue #11 sets for conjure_async."""
RSS_TARGET = 20 * 1024


async def measure_round(
    name: str, sessions: int, config: Config, *, fresh: bool = False
) -> dict[str, Any] | None:
    """One measurement of one contender in a fresh process (``None`` if it failed)."""
    spec = {
        "scenario": "concurrent",
        "runtime": name,
        "sessions": sessions,
        "calls": config.calls,
        "delay": config.delay,
        "memory": False,
        "fresh": fresh,
    }
    outcome = await measure(spec, config.timeout)
    return outcome.result


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Run the rounds; return markdown lines."""
    config = config or (QUICK if quick else FULL)
    ideal = config.calls * config.delay
    lines = [
        (
            f"### Concurrent sessions: {config.calls} tool calls each, model sleeping "
            f"{config.delay * 1e3:.0f} ms per call (ideal wall time {fmt_time(ideal)})"
        ),
        "",
        (
            f"Median of {config.rounds} rounds; the contenders alternate and each "
            "measurement is a fresh process. *Peak RSS per session*: the process's peak "
            "resident memory growth during the run divided by the sessions."
        ),
        "",
        (
            "The hand loop holds the same conversation (the model's responses and a dict "
            "history), so the memory a session adds is its row minus the hand loop's."
        ),
        "",
        (
            "*Model*: `built once`, the model's answers are built once and shared, so it "
            "costs only its sleep and the rows measure the runtimes (as the per-call "
            "benchmark does; the targets are judged on these rows, ADR 0014); `validated "
            "per call`, each answer is validated from its dict at each call, as an API "
            "client parses it (the model's own work, the same for both contenders)."
        ),
        "",
        (
            "*CPU* is the process's CPU time during the run; *collector* the share of it "
            "the cyclic garbage collector took (and its full collections)."
        ),
        "",
        (
            "| sessions | model | runtime | wall time | over ideal | target | CPU | collector "
            "| peak RSS per session |"
        ),
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    medians_by_size: dict[int, dict[str, tuple[float, float | None]]] = {}
    for sessions in config.sessions:
        medians, rows = await _size(sessions, config, fresh=False)
        medians_by_size[sessions] = medians
        lines += rows
        lines += _verdicts(sessions, ideal, medians)
        if config.fresh_rounds:
            lines += (await _size(sessions, config, fresh=True))[1]
    lines += ["", *_budgets(config, medians_by_size)]
    return lines


async def _size(
    sessions: int, config: Config, *, fresh: bool
) -> tuple[dict[str, tuple[float, float | None]], list[str]]:
    """Alternate the contenders at one size; their medians (wall, RSS) and table rows."""
    ideal = config.calls * config.delay
    model = "validated per call" if fresh else "built once"
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    rss: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpus: dict[str, list[tuple[float, float, int]]] = {name: [] for name in CONTENDERS}
    failed: dict[str, str] = {}
    for _ in range(config.fresh_rounds if fresh else config.rounds):
        for name in CONTENDERS:
            if name in failed:
                continue
            result = await measure_round(name, sessions, config, fresh=fresh)
            if result is None:
                failed[name] = "failed or timed out"
                continue
            walls[name].append(result["wall"])
            cpus[name].append((result["cpu"], result["gc"], result["full_collections"]))
            if result["rss_per_session"] is not None:
                rss[name].append(result["rss_per_session"])
    medians: dict[str, tuple[float, float | None]] = {}
    lines: list[str] = []
    for name in CONTENDERS:
        if name in failed or not walls[name]:
            lines.append(f"| {sessions} | {model} | {name} | {failed.get(name, '-')} | | | | | |")
            continue
        wall = statistics.median(walls[name])
        memory = statistics.median(rss[name]) if rss[name] else None
        medians[name] = (wall, memory)
        target = TARGETS.get(sessions) if name == "conjure_async" and not fresh else None
        verdict = f"≤ {target}x ({mark(wall / ideal <= target)})" if target else ""
        cpu, collector, full = sorted(cpus[name])[len(cpus[name]) // 2]
        lines.append(
            f"| {sessions} | {model} | {name} | {fmt_time(wall)} | {wall / ideal:.2f}x "
            f"| {verdict} | {fmt_time(cpu)} | {collector / cpu:.0%} ({full} full) "
            f"| {fmt_bytes(memory)} |"
        )
    if fresh and "conjure_async" in medians and "hand loop" in medians:
        (wall, memory), (hand, hand_memory) = medians["conjure_async"], medians["hand loop"]
        own = "-" if memory is None or hand_memory is None else fmt_bytes(memory - hand_memory)
        lines.append(
            f"| {sessions} | {model} | conjure_async over the hand loop | {wall / hand:.2f}x "
            f"| | | | | {own} |"
        )
    return medians, lines


def _verdicts(
    sessions: int, ideal: float, medians: dict[str, tuple[float, float | None]]
) -> list[str]:
    """Record the targets of one size; return a line comparing the two contenders."""
    conjure, hand = medians.get("conjure_async"), medians.get("hand loop")
    if conjure is None:
        record(f"{sessions:,} sessions x 10 calls", "not measured (failed)", holds=False)
        return []
    target = TARGETS.get(sessions)
    wall, memory = conjure
    if target is not None:
        note = f"hand loop {hand[0] / ideal:.2f}x ideal" if hand is not None else ""
        record(
            f"{sessions:,} sessions x 10 calls, 50 ms model: ≤ {target}x ideal",
            f"{wall / ideal:.2f}x ideal",
            wall / ideal <= target,
            note,
        )
    lines: list[str] = []
    if hand is not None and memory is not None and hand[1] is not None:
        own = memory - hand[1]
        record(
            f"≤ 20 KB peak RSS per session ({sessions:,} sessions)",
            f"{fmt_bytes(memory)} in all; {fmt_bytes(own)} over the hand loop",
            memory <= RSS_TARGET,
            f"the hand loop itself: {fmt_bytes(hand[1])} (the same responses and history)",
        )
        lines.append(
            f"| {sessions} | built once | conjure_async over the hand loop | "
            f"{wall / hand[0]:.2f}x | | | | | {fmt_bytes(own)} |"
        )
    return lines


def _budgets(
    config: Config, medians_by_size: dict[int, dict[str, tuple[float, float | None]]]
) -> list[str]:
    """What a target leaves per iteration for the session's own work, against what it took."""
    ideal = config.calls * config.delay
    lines = []
    for sessions, medians in medians_by_size.items():
        target = TARGETS.get(sessions)
        if target is None or "hand loop" not in medians or "conjure_async" not in medians:
            continue
        iterations = sessions * config.calls
        hand, conjure = medians["hand loop"][0], medians["conjure_async"][0]
        budget = (target * ideal - hand) / iterations
        lines.append(
            f"- {sessions:,} sessions: the target allows {fmt_time(target * ideal)} in all; the "
            f"hand loop took {fmt_time(hand)}, which leaves {fmt_time(max(budget, 0.0))} per "
            f"iteration for everything a session adds (its start and close, the turn engine, "
            f"the tool call's cancel scope, events, the collector); conjure_async added "
            f"{fmt_time((conjure - hand) / iterations)} per iteration."
        )
    return [*lines, ""] if lines else []
