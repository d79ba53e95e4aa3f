"""Telemetry with captured content: client CPU per model call as the conversation grows.

One chat of N tool calls through ``AnthropicModel`` on an
``httpx2.MockTransport`` (the mock parses nothing; a trivial in-process
tool), traced by the OpenTelemetry SDK into an in-memory span exporter, with
``capture_content=True`` and without it, alternating round after round in
the same run. Each ``chat`` span carries the whole request history as
``gen_ai.input.messages``; the session keeps each message's redacted JSON,
so a call costs its new messages and one join of the history's fragments,
not a conversion of the whole history. Target: client CPU per iteration
with captured content at 2,000 calls at most 1.5x that at 100 (as over HTTP
without telemetry).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from dataclasses import dataclass

import httpx2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks._targets import mark, record
from benchmarks.bench_loop import TrivialBackend
from benchmarks.peers_common import Stamps
from benchmarks.peers_http import mock_anthropic_model, mock_anthropic_transport
from conjure_async import Session

CPU = time.process_time
TARGET = 1.5


@dataclass(frozen=True)
class Config:
    """What to measure."""

    sizes: tuple[int, int] = (100, 2000)
    rounds: int = 3
    sample_calls: int = 2000
    """Calls per sample at least: a short conversation is played several times."""


FULL = Config()
QUICK = Config(rounds=1)


def _floor(values: list[str]) -> float:
    """CPU seconds of making and keeping one fresh copy of each value (what any build pays)."""
    kept: list[str] = []
    gc.collect()
    start = CPU()
    for value in values:
        kept.append(value[1:])  # a new string of (almost) the same size
    return CPU() - start


async def conversation(n: int, *, capture: bool) -> tuple[float, float]:
    """Client CPU seconds of one ``n``-call chat, traced to memory, content captured or not.

    Also the :func:`_floor` of its ``gen_ai.input.messages`` values (0 without content).
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    transport = mock_anthropic_transport(n, Stamps())
    try:
        async with httpx2.AsyncClient(transport=transport) as client:
            model = mock_anthropic_model(client, "claude-sonnet-4-5")
            async with Session(
                TrivialBackend(),
                model=model,
                max_iterations=n + 1,
                tracer_provider=provider,
                capture_content=capture,
            ) as session:
                start = CPU()
                reply = await session.chat("go")
                total = CPU() - start
        chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
        if reply.text != "done" or len(chats) != n + 1:
            raise RuntimeError(f"unexpected end of the conversation: {reply.text!r}")
        values = [str((s.attributes or {}).get("gen_ai.input.messages", "")) for s in chats]
        if capture and not all(values):
            raise RuntimeError("no content was captured")
        floor = _floor(values) if capture else 0.0
    finally:
        exporter.clear()
        provider.shutdown()
    return total, floor


async def per_call(config: Config) -> dict[tuple[int, str], float]:
    """Median CPU seconds per iteration of each size: content ``off``, ``on``, and its ``floor``."""
    totals: dict[tuple[int, str], list[float]] = {
        (n, kind): [] for n in config.sizes for kind in ("off", "on", "floor")
    }
    for _ in range(config.rounds):
        for n in config.sizes:
            repeat = max(1, config.sample_calls // n)
            for capture in (False, True):
                gc.collect()
                spent = [await conversation(n, capture=capture) for _ in range(repeat)]
                calls = n * repeat
                totals[n, "on" if capture else "off"].append(sum(t for t, _ in spent) / calls)
                if capture:
                    totals[n, "floor"].append(sum(f for _, f in spent) / calls)
    return {key: statistics.median(values) for key, values in totals.items()}


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Run the benchmark; return markdown lines."""
    config = config or (QUICK if quick else FULL)
    short, long = config.sizes
    measured = await per_call(config)
    ratio = measured[long, "on"] / measured[short, "on"]
    holds = ratio <= TARGET
    record(
        f"Captured content: client CPU per iteration at {long:,} calls ≤ {TARGET}x that at "
        f"{short:,}",
        f"{ratio:.2f}x",
        holds,
    )
    lines = [
        (
            f"`AnthropicModel` on an `httpx2.MockTransport`, traced by the OpenTelemetry SDK into "
            f"an `InMemorySpanExporter`; median of {config.rounds} rounds, `capture_content` off "
            "and on alternating (a conversation shorter than "
            f"{config.sample_calls:,} calls is played several times per sample)."
        ),
        "",
        (
            "| calls per chat | content off | content on | on - off | floor: one fresh copy "
            "of each span's input messages, kept |"
        ),
        "|---:|---:|---:|---:|---:|",
    ]
    for n in config.sizes:
        off, on, floor = measured[n, "off"], measured[n, "on"], measured[n, "floor"]
        lines.append(f"| {n:,} | {_us(off)} | {_us(on)} | {_us(on - off)} | {_us(floor)} |")
    off_ratio = measured[long, "off"] / measured[short, "off"]
    lines += [
        "",
        (
            f"With content captured, CPU per iteration at {long:,} calls is {ratio:.2f}x that at "
            f"{short:,} (target ≤ {TARGET}x: {mark(holds)}); without, {off_ratio:.2f}x. What "
            "still grows is one join of the history's kept JSON per call: each span holds the "
            "whole history as one new string, and the in-memory exporter keeps every one (the "
            "*floor* column: copying each span's value into fresh memory, which any way of "
            "building it pays)."
        ),
        "",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(asyncio.run(run(quick=False))))
