"""Loop overhead and Local bash_tool cost, each against a baseline in the same run.

1. Loop overhead: one chat of N tool calls (one per model response) with an
   instant model and a trivial in-process tool, through ``Session.stream``,
   against a hand-written minimal loop doing the same work (call the model,
   run the tool, append to history). Reported per tool call, and for the
   first and last 10% of a long conversation (growth with history).
2. Local ``bash_tool``: a tool call running ``true`` through the Local
   backend, against raw ``asyncio.create_subprocess_exec("bash", "-c", "true")``
   plus reading its output.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from conjure_async import Session
from conjure_async.backends import (
    Backend,
    LocalBackend,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolDefinition
from conjure_async.testing import text_response, tool_call, tool_use_response


class TrivialBackend(Backend):
    kind = "bench"

    def tools(self) -> Sequence[ToolDefinition]:
        return [ToolDefinition(name="noop", input_schema={"type": "object"})]

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

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        self.stamps.append(time.perf_counter())
        response = self.responses[self.index]
        self.index += 1
        return response


async def conjure_loop(n: int, *, stream: bool = False) -> tuple[float, list[float]]:
    model = InstantModel(_responses(n))
    async with Session(TrivialBackend(), model=model, max_iterations=n + 1) as session:
        start = time.perf_counter()
        if stream:
            async for _ in session.stream("go"):
                pass
        else:
            await session.chat("go")
        total = time.perf_counter() - start
    gaps = [b - a for a, b in zip(model.stamps, model.stamps[1:], strict=False)]
    return total, gaps


async def minimal_loop(n: int) -> tuple[float, list[float]]:
    """A hand-written loop doing the same work, as lean as it gets."""
    model = InstantModel(_responses(n))
    history: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    tools = [{"name": "noop", "input_schema": {"type": "object"}}]

    async def noop(args: dict[str, Any]) -> str:
        return "ok"

    start = time.perf_counter()
    while True:
        request = {
            "model": "instant",
            "max_tokens": 1024,
            "messages": list(history),
            "tools": tools,
        }
        response = await model(request)  # type: ignore[arg-type]
        history.append({"role": "assistant", "content": response.content})
        uses = response.tool_uses
        if not uses:
            break
        results = [
            {"type": "tool_result", "tool_use_id": u.id, "content": await noop(u.input)}
            for u in uses
        ]
        history.append({"role": "user", "content": results})
    total = time.perf_counter() - start
    gaps = [b - a for a, b in zip(model.stamps, model.stamps[1:], strict=False)]
    return total, gaps


async def bash_through_backend(runs: int) -> list[float]:
    times: list[float] = []
    backend = LocalBackend()
    calls = [tool_call("bash_tool", {"command": "true", "description": "b"}) for _ in range(runs)]
    model = InstantModel([tool_use_response(c) for c in calls] + [text_response("k")])
    async with Session(backend, model=model, max_iterations=runs + 1) as session:
        async for event in session.stream("go"):
            if event.kind == "tool_finished":
                times.append(event.duration_s)
    return times


async def bash_raw(runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            "true",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        await proc.stdout.read()
        await proc.wait()
        times.append(time.perf_counter() - start)
    return times


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


async def run(quick: bool = False) -> list[str]:
    """Run the benchmarks; return markdown lines."""
    lines: list[str] = []
    lines.append("### Loop overhead (instant model, trivial in-process tool)")
    lines.append("")
    lines.append(
        "| calls per chat | API | conjure_async per call | minimal loop per call | "
        "overhead per call | ratio |"
    )
    lines.append("|---:|---|---:|---:|---:|---:|")
    sizes = [100, 500] if quick else [100, 2000]
    growth: dict[int, tuple[float, float]] = {}
    for n in sizes:
        best_m = min([await minimal_loop(n) for _ in range(3)], key=lambda r: r[0])
        per_m = best_m[0] / n
        for api in ("chat", "stream"):
            runs = [await conjure_loop(n, stream=api == "stream") for _ in range(3)]
            best = min(runs, key=lambda r: r[0])
            per_c = best[0] / n
            lines.append(
                f"| {n} | `{api}()` | {_us(per_c)} | {_us(per_m)} | {_us(per_c - per_m)} "
                f"| {per_c / per_m:.1f}x |"
            )
            if api == "chat":
                best_c = best
        tenth = max(len(best_c[1]) // 10, 1)
        growth[n] = (
            statistics.median(best_c[1][:tenth]),
            statistics.median(best_c[1][-tenth:]),
        )
    lines.append("")
    lines.append("Growth with history (median time between model calls, conjure_async):")
    lines.append("")
    lines.append("| calls per chat | first 10% | last 10% | last / first |")
    lines.append("|---:|---:|---:|---:|")
    for n, (first, last) in growth.items():
        lines.append(f"| {n} | {_us(first)} | {_us(last)} | {last / first:.2f} |")
    lines.append("")
    runs = 30 if quick else 200
    through = await bash_through_backend(runs)
    raw = await bash_raw(runs)
    med_t, med_r = statistics.median(through), statistics.median(raw)
    lines.append("### Local `bash_tool` against raw `create_subprocess_exec` (`bash -c true`)")
    lines.append("")
    lines.append("| runs | LocalBackend bash_tool (median) | raw subprocess (median) | ratio |")
    lines.append("|---:|---:|---:|---:|")
    lines.append(f"| {runs} | {med_t * 1e3:.2f} ms | {med_r * 1e3:.2f} ms | {med_t / med_r:.2f}x |")
    lines.append("")
    return lines


if __name__ == "__main__":
    print("\n".join(asyncio.run(run())))
