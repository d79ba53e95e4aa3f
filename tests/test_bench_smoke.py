"""Smoke test of the peer benchmark: conjure_async's part with tiny sizes.

Needs no peer package (pydantic-ai, openai-agents, anthropic); the peers'
rows are exercised only for how a missing package is reported.
"""

from __future__ import annotations

import gc
import re

import pytest

from benchmarks import bench_peers
from benchmarks.bench_peers import Config, Outcome

TINY = Config(
    sizes=(3,),
    runtimes=("conjure_async", "conjure_async AnthropicModel"),
    concurrent_runtimes=("conjure_async",),
    sessions=4,
    session_calls=2,
    delay=0.001,
    idle_sessions=5,
    timing_budget=0.0,
    timeout=60.0,
    concurrent_timeout=60.0,
    plot=None,
)

_ROW = re.compile(r"^\| (?P<name>[^|]+?) \| 3 \| (?P<per>[\d.]+ (µs|ms|s)) \| 1\.0x \|")


@pytest.mark.anyio
async def test_conjure_part_produces_tables_with_measured_rows() -> None:
    lines = await bench_peers.run(config=TINY)

    rows = {m["name"]: m["per"] for line in lines if (m := _ROW.match(line))}
    assert set(rows) == {"conjure_async", "conjure_async AnthropicModel"}
    concurrency = [line for line in lines if line.startswith("| conjure_async | ")]
    assert any("%" in line for line in concurrency), concurrency
    assert any(line.startswith("| 5 | ") and "KB" in line for line in lines)


def test_missing_peer_is_reported_not_estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_peers, "installed", lambda name: name == "conjure_async")
    outcomes: dict[tuple[str, int], Outcome | str] = {
        ("conjure_async", 3): Outcome(
            result={
                "per_iteration": 1e-4,
                "first_tenth": 1e-4,
                "last_tenth": 1e-4,
                "tracemalloc_peak": 1000,
                "rss_delta": None,
            }
        ),
        ("pydantic-ai", 3): "not installed (`pydantic_ai`)",
    }

    lines = bench_peers._conversation_rows(
        ("conjure_async", "pydantic-ai"), "conjure_async", outcomes, TINY
    )

    assert "| pydantic-ai | 3 | not installed (`pydantic_ai`) | | | | | |" in lines


@pytest.mark.anyio
async def test_loop_benchmark_reports_every_section_and_its_targets() -> None:
    """bench_loop with tiny sizes: per-call rows, HTTP growth, NativeBackend; each target noted."""
    from benchmarks import __main__ as bench_main
    from benchmarks import _targets, bench_loop

    _targets.VERDICTS.clear()
    tiny = bench_loop.Config(
        sizes=(3,), rounds=1, sample_calls=0, http_sizes=(2, 4), native_functions=2
    )
    lines = await bench_loop.run(config=tiny)

    assert any(line.startswith("| 3 | ") and "µs" in line for line in lines)
    assert any("ratio (target ≤ 1.5x)" in line for line in lines)
    assert any("NativeBackend" in line for line in lines)
    targets = [v.target for v in _targets.VERDICTS]
    assert len(targets) == 4, targets  # chat, stream, HTTP, NativeBackend
    summary = bench_main._summary()
    assert summary[0] == "## Targets (issue #11)"
    assert sum(line.startswith("| `chat()` overhead") for line in summary) == 1


@pytest.mark.anyio
async def test_local_benchmark_breaks_the_difference_down() -> None:
    """bench_local with 5 commands per way: every way measured against the raw subprocess."""
    from benchmarks import bench_local

    lines = await bench_local.run(config=bench_local.Config(runs=5, chunks=1))

    rows = [line for line in lines if line.startswith("| ") and " ms |" in line]
    assert rows[0].startswith("| raw `bash -c true` |")
    assert rows[0].endswith("| 1.00x |")
    assert any(row.startswith("| `bash_tool` through a `Session` |") for row in rows)


@pytest.mark.anyio
async def test_concurrency_benchmark_measures_the_hand_loop_and_the_session() -> None:
    """bench_concurrency with 4 sessions: a row per model and contender, with RSS per session."""
    from benchmarks import bench_concurrency

    tiny = bench_concurrency.Config(
        sessions=(4,), calls=2, delay=0.001, rounds=1, fresh_rounds=1, timeout=60
    )
    lines = await bench_concurrency.run(config=tiny)

    rows = [line for line in lines if line.startswith("| 4 | ")]
    names = [tuple(row.split(" | ")[1:3]) for row in rows]
    contenders = ["hand loop", "conjure_async", "conjure_async over the hand loop"]
    assert names == [("built once", name) for name in contenders] + [
        ("validated per call", name) for name in contenders
    ]
    assert all("KB" in row for row in rows), rows


@pytest.mark.anyio
async def test_cost_benchmark_measures_caching_and_compaction() -> None:
    """The cost benchmark with a short conversation: both tables, both verdicts met."""
    from benchmarks import bench_cost

    lines = await bench_cost.run(config=bench_cost.Config(calls=14, result_chars=20_000))

    text = "\n".join(lines)
    assert "| default (`PromptCaching()`) | 15 |" in text
    assert "| `Compaction(trigger=50_000)` | 15 | 1 |" in text
    assert re.search(r"Caching bills \d+\.\d% less input \((meets|MISSES) the target", text)
    assert "(50,000 + 10,000 tokens): yes" in text
    assert "| from the last compaction block (default) | 15 |" in text
    assert "what the model reads and is billed is the same" in text


@pytest.mark.anyio
async def test_the_instruction_count_workloads_run_without_valgrind() -> None:
    """benchmarks.instructions' two workloads run as valgrind would run them (small sizes)."""
    from benchmarks import instructions

    try:
        await instructions._workload("calls", 10)
        await instructions._workload("sessions", 2)
    finally:
        gc.enable()  # the workload turns the collector off, as in its own process
    assert instructions._COLLECTED.search("==1== Collected : 12345").group(1) == "12345"


@pytest.mark.anyio
async def test_telemetry_benchmark_measures_content_off_and_on() -> None:
    """The telemetry benchmark with short chats: both sizes, off and on, and its verdict."""
    from benchmarks import _targets, bench_telemetry

    config = bench_telemetry.Config(sizes=(3, 12), rounds=1, sample_calls=12)
    lines = await bench_telemetry.run(config=config)

    text = "\n".join(lines)
    for n in (3, 12):
        row = rf"^\| {n} \| [\d.]+ µs \| [\d.]+ µs \| -?[\d.]+ µs \| [\d.]+ µs \|$"
        assert re.search(row, text, re.M), text
    assert re.search(r"is \d+\.\d\dx that at 3 \(target ≤ 1\.5x: (yes|\*\*no\*\*)\)", text)
    assert _targets.VERDICTS[-1].target.startswith("Captured content: client CPU per iteration")


@pytest.mark.anyio
async def test_store_benchmark_measures_every_store_and_size() -> None:
    """bench_store with tiny sizes: both ways per store and size, JSON and disk bytes per save."""
    from benchmarks import bench_store

    config = bench_store.Config(sizes=(4, 40), result_chars=200, rounds=2)
    lines = await bench_store.run(config=config)

    text = "\n".join(lines)
    for kind in ("memory", "sqlite", "postgres"):
        for way in (bench_store.WHOLE, bench_store.APPENDED):
            for n in (4, 40):
                row = rf"\| {kind} \| {re.escape(way)} \| {n} \| \d+\.\d\d ms \| [\d.]+ [KM]?B \|"
                assert re.search(row, text), (row, text)
        assert re.search(rf"- {kind} at 40 messages: appending takes \d", text), text
    assert re.search(r"\| sqlite \| [^|]+\| 40 \| [^|]+\| [^|]+\| [\d.]+ [KM]?B \|", text), text
