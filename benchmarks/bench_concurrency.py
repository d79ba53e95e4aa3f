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

from benchmarks.bench_peers import fmt_bytes, fmt_time, measure

CONTENDERS = ("hand loop", "conjure_async")


@dataclass(frozen=True)
class Config:
    """What to measure."""

    sessions: tuple[int, ...] = (1000, 5000)
    calls: int = 10
    delay: float = 0.05
    rounds: int = 5
    timeout: float = 180.0


FULL = Config()
QUICK = Config(sessions=(200, 1000), rounds=3, timeout=60.0)
TARGETS = {1000: 1.5, 5000: 3.0}
"""Wall time over the ideal that issue #11 sets for conjure_async."""
RSS_TARGET = 20 * 1024


async def measure_round(name: str, sessions: int, config: Config) -> dict[str, Any] | None:
    """One measurement of one contender in a fresh process (``None`` if it failed)."""
    spec = {
        "scenario": "concurrent",
        "runtime": name,
        "sessions": sessions,
        "calls": config.calls,
        "delay": config.delay,
        "memory": False,
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
        "| sessions | runtime | wall time | over ideal | target | peak RSS per session |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for sessions in config.sessions:
        walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        rss: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        failed: dict[str, str] = {}
        for _ in range(config.rounds):
            for name in CONTENDERS:
                if name in failed:
                    continue
                result = await measure_round(name, sessions, config)
                if result is None:
                    failed[name] = "failed or timed out"
                    continue
                walls[name].append(result["wall"])
                if result["rss_per_session"] is not None:
                    rss[name].append(result["rss_per_session"])
        for name in CONTENDERS:
            if name in failed or not walls[name]:
                lines.append(f"| {sessions} | {name} | {failed.get(name, '-')} | | | |")
                continue
            wall = statistics.median(walls[name])
            target = TARGETS.get(sessions) if name == "conjure_async" else None
            memory = statistics.median(rss[name]) if rss[name] else None
            lines.append(
                f"| {sessions} | {name} | {fmt_time(wall)} | {wall / ideal:.2f}x "
                f"| {f'≤ {target}x' if target else ''} | {fmt_bytes(memory)}"
                f"{' (target ≤ 20 KB)' if name == 'conjure_async' else ''} |"
            )
    lines.append("")
    return lines
