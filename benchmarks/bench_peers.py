"""conjure_async against peer agent runtimes, like against like, in one run.

The same scripted conversation (the user says "go"; an instant fake model
calls the trivial async tool ``noop(i: int)`` once per response, ``n``
times, then answers "done") is played through:

* in process: conjure_async (a ``Session`` with a one-tool backend and an
  instant model callable), pydantic-ai (``Agent`` + ``FunctionModel`` +
  ``@agent.tool_plain``), openai-agents (``Runner.run`` with a scripted
  ``Model`` + ``@function_tool``);
* over HTTP, against one ``httpx2.MockTransport`` fake of ``POST
  /v1/messages``: conjure_async's ``AnthropicModel`` and the official
  anthropic SDK's ``client.beta.messages.tool_runner`` with
  ``@beta_async_tool`` (full history each request, ``thread=False``, like
  conjure_async; and the SDK default, a server-side message thread).

Each measurement runs in a fresh process (``benchmarks.peers_worker``) with a
time budget; a runtime that does not finish in it is reported with how far
it got, never extrapolated. Also measured: many concurrent sessions with a
model sleeping 50 ms per call (conjure_async and pydantic-ai), and the memory
each idle open conjure_async session holds.

``python -m benchmarks.bench_peers [--quick]`` prints the markdown and
writes ``docs/img/peers.png``; :func:`run` returns the markdown lines.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from benchmarks.peers_worker import RUNTIMES

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "peers.png"

IN_PROCESS = ("conjure_async", "pydantic-ai", "openai-agents")
OVER_HTTP = (
    "conjure_async AnthropicModel",
    "anthropic SDK tool_runner (thread=False)",
    "anthropic SDK tool_runner (message thread)",
)
CONCURRENT = ("conjure_async", "pydantic-ai")
PACKAGES = {
    "hand loop": "conjure_async",
    "conjure_async": "conjure_async",
    "pydantic-ai": "pydantic_ai",
    "openai-agents": "agents",
}


@dataclass(frozen=True)
class Config:
    """What to measure and how long each measurement may take."""

    sizes: tuple[int, ...] = (100, 2000)
    """Tool calls per conversation."""
    runtimes: tuple[str, ...] = IN_PROCESS + OVER_HTTP
    """Which conversation runtimes to measure (names from ``peers_worker.RUNTIMES``)."""
    concurrent_runtimes: tuple[str, ...] = CONCURRENT
    sessions: int = 1000
    """Concurrent sessions in the concurrency scenario (0: skip it)."""
    session_calls: int = 10
    delay: float = 0.05
    """Seconds the model sleeps per call in the concurrency scenario."""
    idle_sessions: int = 1000
    """Open idle sessions to measure memory per session (0: skip)."""
    timing_budget: float = 3.0
    """Seconds of repeated timing runs per measurement (best run counts)."""
    memory_budget: float = 10.0
    """Skip the tracemalloc run when one timed run took longer than this."""
    timeout: float = 90.0
    """Seconds one conversation measurement may take before it is stopped (the whole
    ``python -m benchmarks`` run stays within about a quarter of an hour; a peer stopped
    is reported with how far it got)."""
    slow_timeouts: tuple[tuple[str, float], ...] = (("openai-agents", 45.0),)
    """Shorter limits for runtimes known to take far longer than the rest."""
    concurrent_timeout: float = 240.0
    plot: Path | None = PLOT

    def limit(self, runtime: str) -> float:
        """Seconds one conversation measurement of ``runtime`` may take."""
        return min(dict(self.slow_timeouts).get(runtime, self.timeout), self.timeout)


FULL = Config()
QUICK = Config(
    sizes=(100, 300),
    sessions=200,
    idle_sessions=200,
    timing_budget=1.5,
    memory_budget=5.0,
    timeout=12.0,
    slow_timeouts=(),
    concurrent_timeout=25.0,
)


@dataclass
class Outcome:
    """What one worker process reported."""

    result: dict[str, Any] | None = None
    error: str | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False


def installed(runtime: str) -> bool:
    """Whether the package a runtime needs can be imported."""
    package = RUNTIMES[runtime][2] if runtime in RUNTIMES else PACKAGES[runtime]
    return importlib.util.find_spec(package) is not None


async def measure(spec: dict[str, Any], limit: float) -> Outcome:
    """Run one spec in a fresh worker process, stopping it after ``limit`` seconds."""
    outcome = Outcome()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # The worker plans its repeats and memory run to end before the limit.
    spec = {**spec, "deadline": max(limit - 3.0, 1.0)}
    command = [sys.executable, "-m", "benchmarks.peers_worker", json.dumps(spec)]
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(command, cwd=ROOT, env=env, stderr=stderr)
        try:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            with anyio.move_on_after(limit) as scope:
                while True:
                    try:
                        line = await lines.receive_until(b"\n", 1 << 24)
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        break
                    data = json.loads(line)
                    if "progress" in data:
                        outcome.progress.append(data)
                    elif "partial" in data or "result" in data:
                        outcome.result = data.get("result", data.get("partial"))
                    elif "error" in data:
                        outcome.error = data["error"]
            outcome.timed_out = scope.cancelled_caught
        finally:
            with anyio.CancelScope(shield=True):
                if not outcome.timed_out:
                    # It closed stdout and is exiting: let the event loop reap it
                    # (killing now could reap it behind the child watcher's back).
                    with anyio.move_on_after(10):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                await process.wait()
            await process.aclose()
        if outcome.result is None and outcome.error is None and not outcome.timed_out:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            outcome.error = " / ".join(tail) or f"exit code {process.returncode}"
    return outcome


# -- formatting ---------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    """A duration with a unit that keeps 3 significant digits."""
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_bytes(value: float | None) -> str:
    """A byte count in KB / MB."""
    if value is None:
        return "-"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MB"
    return f"{value / 1024:.1f} KB"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.1f}x"


def _conversation_rows(
    names: tuple[str, ...],
    reference: str,
    outcomes: dict[tuple[str, int], Outcome | str],
    config: Config,
) -> list[str]:
    lines = [
        (
            "| runtime | calls | per iteration | vs conjure_async | first 10% | last 10% "
            "| peak tracemalloc | peak RSS growth |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in config.sizes:
        ref = outcomes.get((reference, n))
        ref_per = ref.result["per_iteration"] if isinstance(ref, Outcome) and ref.result else None
        for name in names:
            outcome = outcomes.get((name, n))
            if outcome is None:
                continue
            if isinstance(outcome, str):
                lines.append(f"| {name} | {n} | {outcome} | | | | | |")
                continue
            result = outcome.result
            timeout = config.limit(name)
            if result is not None:
                memory = (
                    fmt_bytes(result["tracemalloc_peak"])
                    if result["tracemalloc_peak"] is not None
                    else "skipped (time)"
                )
                lines.append(
                    f"| {name} | {n} | {fmt_time(result['per_iteration'])} "
                    f"| {_ratio(result['per_iteration'], ref_per)} "
                    f"| {fmt_time(result['first_tenth'])} | {fmt_time(result['last_tenth'])} "
                    f"| {memory} | {fmt_bytes(result['rss_delta'])} |"
                )
            elif outcome.timed_out:
                last = outcome.progress[-1] if outcome.progress else None
                if last is None:
                    note = f"did not finish in {timeout:.0f} s"
                    lines.append(f"| {name} | {n} | {note} | | | | | |")
                else:
                    tail = sum(last["gaps"]) / max(len(last["gaps"]), 1)
                    note = (
                        f"stopped at {timeout:.0f} s after {last['progress']} calls "
                        f"({fmt_time(last['elapsed'] / max(last['progress'], 1))} per iteration "
                        "so far)"
                    )
                    lines.append(
                        f"| {name} | {n} | {note} | > {_ratio(tail, ref_per)} | | "
                        f"{fmt_time(tail)} at call {last['progress']} | | |"
                    )
            else:
                lines.append(f"| {name} | {n} | failed: {outcome.error} | | | | | |")
    return lines


# -- the run ------------------------------------------------------------------


async def _conversations(
    names: tuple[str, ...], config: Config
) -> dict[tuple[str, int], Outcome | str]:
    outcomes: dict[tuple[str, int], Outcome | str] = {}
    for n in config.sizes:
        for name in names:
            if name not in config.runtimes:
                continue
            if not installed(name):
                outcomes[name, n] = f"not installed (`{RUNTIMES[name][2]}`)"
                continue
            spec = {
                "scenario": "conversation",
                "runtime": name,
                "n": n,
                "budget": config.timing_budget,
                "memory_budget": config.memory_budget,
                "progress_every": max(n // 50, 10),
            }
            outcomes[name, n] = await measure(spec, config.limit(name))
    return outcomes


async def _concurrency(config: Config) -> tuple[list[str], dict[str, Outcome]]:
    ideal = config.session_calls * config.delay
    lines = [
        (
            f"### {config.sessions} concurrent sessions, {config.session_calls} tool calls each, "
            f"model sleeping {config.delay * 1e3:.0f} ms per call"
        ),
        "",
        (
            f"Ideal wall time: {config.session_calls} x {config.delay * 1e3:.0f} ms = "
            f"{fmt_time(ideal)}. One event loop runs every session, so the wall time cannot "
            "be less than sessions x calls x the CPU time of one iteration. "
            "Memory per session: peak growth over the whole run divided "
            "by the number of sessions (RSS in a plain run; tracemalloc in a second run, "
            "whose wall time is slower because tracing allocations is costly)."
        ),
        "",
        (
            "| runtime | wall time | over ideal | peak RSS per session "
            "| peak tracemalloc per session |"
        ),
        "|---|---:|---:|---:|---:|",
    ]
    outcomes: dict[str, Outcome] = {}
    for name in config.concurrent_runtimes:
        if not installed(name):
            lines.append(f"| {name} | not installed (`{PACKAGES[name]}`) | | | |")
            continue
        spec = {
            "scenario": "concurrent",
            "runtime": name,
            "sessions": config.sessions,
            "calls": config.session_calls,
            "delay": config.delay,
            "memory_budget": config.memory_budget,
        }
        outcome = await measure(spec, config.concurrent_timeout)
        outcomes[name] = outcome
        result = outcome.result
        if result is None:
            why = (
                f"did not finish in {config.concurrent_timeout:.0f} s"
                if outcome.timed_out
                else f"failed: {outcome.error}"
            )
            lines.append(f"| {name} | {why} | | | |")
            continue
        over = (result["wall"] - ideal) / ideal
        memory = (
            fmt_bytes(result["tracemalloc_per_session"])
            if result["tracemalloc_per_session"] is not None
            else "skipped (time)"
        )
        lines.append(
            f"| {name} | {fmt_time(result['wall'])} | {over * 100:+.1f}% "
            f"| {fmt_bytes(result['rss_per_session'])} "
            f"| {memory} |"
        )
    lines.append("")
    return lines, outcomes


async def _idle(config: Config) -> list[str]:
    outcome = await measure({"scenario": "idle", "count": config.idle_sessions}, 120)
    lines = [f"### Memory per idle open conjure_async session ({config.idle_sessions} open)", ""]
    result = outcome.result
    if result is None:
        lines += [f"Failed: {outcome.error or 'timed out'}", ""]
        return lines
    lines += [
        "| sessions open | tracemalloc per session | RSS per session | target |",
        "|---:|---:|---:|---:|",
        (
            f"| {result['count']} | {fmt_bytes(result['tracemalloc_per_session'])} "
            f"| {fmt_bytes(result['rss_per_session'])} | < 50 KB |"
        ),
        "",
    ]
    return lines


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Run the peer benchmarks; return markdown lines (and write the plot if configured)."""
    config = config or (QUICK if quick else FULL)
    lines = [
        "### Against peer runtimes: the same scripted conversation",
        "",
        (
            "One conversation of N tool calls (one per model response; instant fake model; "
            "trivial `async` tool taking `i: int`), each runtime in a fresh process. "
            "*Per iteration* is a whole conversation's wall time divided by N (best of "
            "several runs when they fit the time budget); *first/last 10%* are median "
            "times between consecutive model calls at the start and the end of the "
            "conversation (growth with history). Peak tracemalloc is measured in a separate "
            "run; peak RSS growth in the first timed run."
        ),
        "",
        (
            "Setups: conjure_async `Session` with a one-tool `Backend` and a model callable "
            "returning `MessagesResponse`; pydantic-ai `Agent(FunctionModel(fn))` with "
            "`@agent.tool_plain`, `fn` returning usage so `FunctionModel` does not estimate "
            "tokens over the history (favours pydantic-ai), `UsageLimits(request_limit=None)`; "
            "openai-agents `Runner.run` with a `Model` subclass returning "
            "`ResponseFunctionToolCall` items and `@function_tool`, tracing disabled; "
            "anthropic SDK `client.beta.messages.tool_runner(...)` with `@beta_async_tool` "
            "and `AsyncAnthropic(http_client=httpx2.AsyncClient(transport=MockTransport(...)))`; "
            "conjure_async `AnthropicModel(stream=False, http_client=<the same kind of client>)`. "
            "A run that does not finish within its limit is reported with how far it got."
        ),
        "",
        "#### In process",
        "",
    ]
    inproc = await _conversations(IN_PROCESS, config)
    lines += _conversation_rows(IN_PROCESS, "conjure_async", inproc, config)
    lines += [
        "",
        "#### Over HTTP (one `httpx2.MockTransport` fake of `POST /v1/messages`, JSON responses)",
        "",
    ]
    http = await _conversations(OVER_HTTP, config)
    lines += _conversation_rows(OVER_HTTP, "conjure_async AnthropicModel", http, config)
    lines += [
        "",
        (
            "The SDK's default mode (message thread) sends only the new messages and relies "
            "on the server to keep the history; the mock server ignores it, so that row is the "
            "client's cost only and is not like against like."
        ),
        "",
    ]
    concurrency: dict[str, Outcome] = {}
    if config.sessions:
        more, concurrency = await _concurrency(config)
        lines += more
    if config.idle_sessions:
        lines += await _idle(config)
    if config.plot is not None:
        written = plot({**inproc, **http}, concurrency, config)
        if written is not None:
            lines += [f"![conjure_async against peers](img/{written.name})", ""]
    return lines


# -- the plot -----------------------------------------------------------------


def plot(
    conversations: dict[tuple[str, int], Outcome | str],
    concurrency: dict[str, Outcome],
    config: Config,
) -> Path | None:
    """Write the PNG (per-iteration time along the conversation, and concurrency)."""
    if config.plot is None or importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    n = max(config.sizes)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, names, title in (
        (axes[0], IN_PROCESS, f"In process: time per iteration ({n}-call conversation)"),
        (axes[1], OVER_HTTP, f"Over HTTP (mock transport, {n}-call conversation)"),
    ):
        for name in names:
            outcome = conversations.get((name, n))
            if not isinstance(outcome, Outcome):
                continue
            if outcome.result is not None:
                points = [(i, v) for i, v in outcome.result["series"]]
                label = name
            elif outcome.progress:
                points = [
                    (p["progress"], sum(p["gaps"]) / max(len(p["gaps"]), 1))
                    for p in outcome.progress
                ]
                label = f"{name} (stopped at {config.limit(name):.0f} s)"
            else:
                continue
            xs = [p[0] for p in points]
            ys = [p[1] * 1e3 for p in points]
            ax.plot(xs, ys, label=label, linewidth=1.6)
        ax.set_yscale("log")
        ax.set_xlabel("tool call index")
        ax.set_ylabel("ms between model calls (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(visible=True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    names = [name for name, o in concurrency.items() if o.result is not None]
    walls = [concurrency[name].result["wall"] for name in names]  # type: ignore[index]
    bars = ax.bar(names, walls, color=["tab:blue", "tab:orange"][: len(names)])
    ax.bar_label(bars, labels=[f"{w:.2f} s" for w in walls], fontsize=9)
    ideal = config.session_calls * config.delay
    ax.axhline(ideal, color="black", linestyle="--", label=f"ideal {ideal:.2f} s")
    ax.set_ylabel("wall time (s)")
    ax.set_title(
        f"{config.sessions} concurrent sessions x {config.session_calls} calls, "
        f"{config.delay * 1e3:.0f} ms model",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    config.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(config.plot, dpi=110)
    plt.close(fig)
    return config.plot


def main() -> None:
    """Command line: print the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short budgets")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    if args.no_plot:
        config = replace(config, plot=None)
    print("\n".join(anyio.run(functools.partial(run, args.quick, config=config))))


if __name__ == "__main__":
    main()
