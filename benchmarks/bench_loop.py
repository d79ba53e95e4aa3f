"""The loop's own cost, each figure against a baseline measured in the same run.

1. Per tool call: one chat of N tool calls (one per model response; an
   instant model; a trivial in-process tool) through ``Session.chat`` and
   ``Session.stream``, against a hand-written dict-only loop doing the same
   work (call the model, run the tool, keep the history). CPU time
   (``time.process_time``); the three contenders alternate round after round
   and the median of the rounds counts, so a busy machine shifts all three.
2. Over HTTP: ``AnthropicModel`` on an ``httpx2.MockTransport`` (the mock
   parses nothing): client CPU per iteration at a short and a long
   conversation. The request body keeps the history's JSON as an
   append-only prefix, so it should not grow with the history.
3. ``NativeBackend`` construction from plain functions: the first time
   per function, and the same function again (cached).

Local ``bash_tool`` against a raw subprocess is in :mod:`benchmarks.bench_local`.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from benchmarks._targets import mark, record
from benchmarks.peers_common import Stamps
from benchmarks.peers_hand import loop as hand_loop
from benchmarks.peers_http import mock_anthropic_model, mock_anthropic_transport
from conjure_async import Session
from conjure_async.backends import (
    Backend,
    NativeBackend,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.messages import MessagesResponse, ToolDefinition
from conjure_async.testing import text_response, tool_call, tool_use_response

CPU = time.process_time
OVERHEAD_TARGET = 30e-6
STREAM_TARGET = 1.5
HTTP_TARGET = 1.5


@dataclass(frozen=True)
class Config:
    """What to measure."""

    sizes: tuple[int, ...] = (100, 2000, 10000)
    rounds: int = 5
    sample_calls: int = 2000
    """Calls per sample at least: a short conversation is played several times."""
    http_sizes: tuple[int, int] = (100, 2000)
    native_functions: int = 200


FULL = Config()
QUICK = Config(sizes=(100, 2000), rounds=3, native_functions=50)


TRIVIAL_TOOLS = (ToolDefinition(name="noop", input_schema={"type": "object"}),)


class TrivialBackend(Backend):
    """One tool, ``noop``, answering "ok" at once."""

    kind = "bench"

    def tools(self) -> Sequence[ToolDefinition]:
        return TRIVIAL_TOOLS

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        yield ToolResult(output="ok")


def _responses(n: int) -> list[MessagesResponse]:
    return [tool_use_response(tool_call("noop", {"i": i})) for i in range(n)] + [
        text_response("done")
    ]


class InstantModel:
    """Returns prebuilt responses and records when each call happened."""

    model_name = "instant"

    def __init__(self, responses: list[MessagesResponse]) -> None:
        self.responses = responses
        self.index = 0
        self.stamps: list[float] = []

    async def __call__(self, request: Any) -> MessagesResponse:
        self.stamps.append(time.perf_counter())
        response = self.responses[self.index]
        self.index += 1
        return response


# -- 1. per tool call ---------------------------------------------------------


async def conjure_loop(
    n: int, *, stream: bool = False, collect: bool = True
) -> tuple[float, list[float]]:
    """CPU seconds of one ``n``-call chat (or stream), and the gaps between model calls."""
    model = InstantModel(_responses(n))
    async with Session(TrivialBackend(), model=model, max_iterations=n + 1) as session:
        if collect:
            gc.collect()
        start = CPU()
        if stream:
            async for _ in session.stream("go"):
                pass
        else:
            await session.chat("go")
        total = CPU() - start
    gaps = [b - a for a, b in zip(model.stamps, model.stamps[1:], strict=False)]
    return total, gaps


async def minimal_loop(n: int, *, collect: bool = True) -> tuple[float, list[float]]:
    """CPU seconds of the hand-written dict-only loop doing the same work."""
    model = InstantModel(_responses(n))
    if collect:
        gc.collect()
    start = CPU()
    await hand_loop(model, "go")
    total = CPU() - start
    gaps = [b - a for a, b in zip(model.stamps, model.stamps[1:], strict=False)]
    return total, gaps


@dataclass
class PerCall:
    """Median CPU seconds per tool call of each contender at one size."""

    n: int
    hand: float
    chat: float
    stream: float
    first_tenth: float
    last_tenth: float


async def per_call(n: int, rounds: int, sample_calls: int = 2000) -> PerCall:
    """Alternate hand loop, chat and stream for ``rounds`` rounds; medians per call.

    A short conversation is played several times per sample (at least
    ``sample_calls`` calls a sample), so one sample is not a millisecond of
    CPU time; the garbage collector is emptied once per sample.
    """
    repeat = max(1, sample_calls // n)
    totals: dict[str, list[float]] = {"hand": [], "chat": [], "stream": []}
    gaps: list[list[float]] = []
    for _ in range(rounds):
        gc.collect()
        totals["hand"].append(
            sum([(await minimal_loop(n, collect=False))[0] for _ in range(repeat)])
        )
        gc.collect()
        chat_runs = [await conjure_loop(n, collect=False) for _ in range(repeat)]
        totals["chat"].append(sum(total for total, _ in chat_runs))
        gaps.append(chat_runs[0][1])
        gc.collect()
        stream_runs = [await conjure_loop(n, stream=True, collect=False) for _ in range(repeat)]
        totals["stream"].append(sum(total for total, _ in stream_runs))
    calls = n * repeat
    middle = sorted(range(rounds), key=lambda i: totals["chat"][i])[rounds // 2]
    tenth = max(len(gaps[middle]) // 10, 1)
    return PerCall(
        n=n,
        hand=statistics.median(totals["hand"]) / calls,
        chat=statistics.median(totals["chat"]) / calls,
        stream=statistics.median(totals["stream"]) / calls,
        first_tenth=statistics.median(gaps[middle][:tenth]),
        last_tenth=statistics.median(gaps[middle][-tenth:]),
    )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def per_call_lines(results: list[PerCall], rounds: int) -> list[str]:
    """The markdown table of :func:`per_call` results."""
    lines = [
        "### Per tool call (instant model, trivial in-process tool), CPU time",
        "",
        (
            f"Median of {rounds} rounds; in each round the hand loop, `chat()` and `stream()` "
            "run one after the other (a conversation shorter than 2,000 calls is played "
            "several times per sample). *Overhead* is the contender's time per call minus the "
            "hand loop's."
        ),
        "",
        (
            "| calls per chat | hand loop | `chat()` | `chat()` overhead (target ≤ 30 µs) "
            "| `stream()` | `stream()` overhead | stream / chat overhead (target ≤ 1.5x) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        chat_over, stream_over = r.chat - r.hand, r.stream - r.hand
        ratio = stream_over / chat_over if chat_over > 0 else float("nan")
        chat_ok, stream_ok = chat_over <= OVERHEAD_TARGET, ratio <= STREAM_TARGET
        lines.append(
            f"| {r.n} | {_us(r.hand)} | {_us(r.chat)} | {_us(chat_over)} "
            f"({mark(chat_ok)}) | {_us(r.stream)} | {_us(stream_over)} "
            f"| {ratio:.2f}x ({mark(stream_ok)}) |"
        )
        record(f"`chat()` overhead per tool call ≤ 30 µs at {r.n:,} calls", _us(chat_over), chat_ok)
        record(
            f"`stream()` overhead ≤ 1.5x `chat()`'s at {r.n:,} calls", f"{ratio:.2f}x", stream_ok
        )
    lines += [
        "",
        "Growth with history (`chat()`, median wall time between model calls):",
        "",
        "| calls per chat | first 10% | last 10% | last / first |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.n} | {_us(r.first_tenth)} | {_us(r.last_tenth)} "
        f"| {r.last_tenth / r.first_tenth:.2f} |"
        for r in results
    ]
    lines.append("")
    return lines


# -- 2. over HTTP ---------------------------------------------------------------


async def http_conversation(n: int) -> float:
    """Client CPU seconds of one ``n``-call chat through ``AnthropicModel`` on a mock transport."""

    transport = mock_anthropic_transport(n, Stamps())
    async with httpx2.AsyncClient(transport=transport) as client:
        model = mock_anthropic_model(client, "claude-sonnet-4-5")
        async with Session(TrivialBackend(), model=model, max_iterations=n + 1) as session:
            gc.collect()
            start = CPU()
            reply = await session.chat("go")
            total = CPU() - start
    if reply.text != "done":
        raise RuntimeError(f"unexpected end of the HTTP conversation: {reply.text!r}")
    return total


async def http_growth(sizes: tuple[int, int], rounds: int) -> list[str]:
    """Client CPU per iteration at two conversation lengths."""
    totals: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            totals[n].append(await http_conversation(n))
    short, long = (statistics.median(totals[n]) / n for n in sizes)
    ratio = long / short
    record(
        f"Over HTTP: client CPU per iteration at {sizes[1]:,} calls ≤ 1.5x that at {sizes[0]:,}",
        f"{ratio:.2f}x",
        ratio <= HTTP_TARGET,
    )
    return [
        "### Over HTTP (`AnthropicModel`, `httpx2.MockTransport`), client CPU per iteration",
        "",
        f"| {sizes[0]} calls | {sizes[1]} calls | ratio (target ≤ {HTTP_TARGET}x) |",
        "|---:|---:|---:|",
        f"| {_us(short)} | {_us(long)} | {ratio:.2f}x ({mark(ratio <= HTTP_TARGET)}) |",
        "",
    ]


# -- 3. NativeBackend construction ---------------------------------------------------


def _fresh_function(i: int) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(  # fresh function objects, as an application defining tools would have
        f"async def tool_{i}(city: str, days: int = 3) -> str:\n"
        f'    """Forecast for a city.\n\n    Args:\n        city: Where.\n'
        f'        days: How many days.\n    """\n    return city\n',
        namespace,
    )
    return namespace[f"tool_{i}"]


def native_construction(count: int, rounds: int) -> list[str]:
    """``NativeBackend(fn)``: a new function each time, and the same function again."""
    fresh: list[float] = []
    again: list[float] = []
    for _ in range(rounds):
        functions = [_fresh_function(i) for i in range(count)]
        start = CPU()
        for function in functions:
            NativeBackend(function)
        fresh.append((CPU() - start) / count)
        start = CPU()
        for function in functions:
            NativeBackend(function)
        again.append((CPU() - start) / count)
    first, cached = statistics.median(fresh), statistics.median(again)
    record(
        "`NativeBackend` from plain functions: construction cached per function",
        f"{_us(first)} first, {_us(cached)} again",
        cached <= first / 10,
    )
    return [
        "### `NativeBackend` built from a plain function (CPU per construction)",
        "",
        (
            "A new function each time (its arguments model and schema are built), then "
            "the same functions again (built once per function, kept while it lives)."
        ),
        "",
        "| first time per function | same function again |",
        "|---:|---:|",
        f"| {_us(first)} | {_us(cached)} |",
        "",
    ]


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Run the benchmarks; return markdown lines."""
    config = config or (QUICK if quick else FULL)
    results = [await per_call(n, config.rounds, config.sample_calls) for n in config.sizes]
    lines = per_call_lines(results, config.rounds)
    lines += await http_growth(config.http_sizes, config.rounds)
    lines += native_construction(config.native_functions, config.rounds)
    return lines


if __name__ == "__main__":
    print("\n".join(asyncio.run(run())))
