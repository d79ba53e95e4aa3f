"""Long conversations and cost: prompt caching and compaction over the fake server's accounting.

One conversation of N tool calls (one per model response; a native
``lookup`` tool answering a few thousand characters), played through
``AnthropicModel`` over real HTTP against ``FakeAnthropicServer(accounting=True)``,
which bills each request as the API documents it (tokens at one per 4 bytes
of each block's JSON; cache reads and writes from the request's breakpoints).

1. Billed input cost with the default prompt caching against caching off:
   every request resends the whole history, so without caching the billed
   input grows with the square of the length; with it, each request reads
   the previous prefix at 0.1x and writes only what is new at 1.25x.
   Target: at least 80% less.
2. Peak request size with server-side compaction at a threshold: the most
   input tokens one request made the model read (the largest context of a
   sampling pass), against the threshold. Target: bounded by the threshold
   plus one step, whatever the length.
3. Request bytes with compaction: the session sends from the last
   compaction block on, against the same conversation sending its whole
   history (the baseline, measured in the same run); the billed input and
   the context read must be the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conjure_async import Compaction, Session
from conjure_async._history_scan import HistoryScan
from conjure_async.backends import NativeBackend, tool
from conjure_async.events import ModelResponded
from conjure_async.models import AnthropicModel
from conjure_async.pricing import PRICES
from conjure_async.testing import FakeAnthropicServer

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful inventory agent. Look every item up, then report. " * 60
SAVING_TARGET = 0.80


@dataclass(frozen=True)
class Config:
    """What to measure."""

    calls: int = 200
    result_chars: int = 3000
    """Characters per tool result (about 750 tokens)."""
    threshold: int = 50_000
    """The compaction trigger (the API's minimum)."""


FULL = Config()
QUICK = Config(calls=80)


@dataclass
class Outcome:
    """One played conversation."""

    requests: int
    input_usd: float
    uncached: int
    written: int
    read: int
    peak_context: int
    """The largest context one sampling pass read (input tokens, cached or not)."""
    compactions: int
    history_tokens: int
    """The whole history at the end, as the API would count it without compaction."""
    seconds: float
    request_bytes: int
    """The bytes of every request body sent, added up."""
    largest_request_bytes: int


def _agent(calls: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The fake model: one ``lookup`` per response until ``calls`` are done, then a summary.

    It counts the calls it made itself: a request cut at a compaction block
    carries only the results after it.
    """
    issued = [0]

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        done = issued[0]
        if done >= calls:
            return {"content": [{"type": "text", "text": f"Looked up {done} items."}]}
        issued[0] = done + 1
        call = {"type": "tool_use", "id": f"toolu_{done:05d}", "name": "lookup"}
        return {"content": [{**call, "input": {"item": done}}], "stop_reason": "tool_use"}

    return answer


def _backend(result_chars: int) -> NativeBackend:
    @tool
    async def lookup(item: int) -> str:
        """Look an item up in the inventory."""
        return f"item {item}: " + ("stock level nominal; " * result_chars)[:result_chars]

    return NativeBackend(lookup)


def _context(usage: Any) -> int:
    iterations = (usage.model_extra or {}).get("iterations") or [usage.model_dump()]
    return max(
        int(i.get("input_tokens", 0))
        + int(i.get("cache_read_input_tokens") or 0)
        + int(i.get("cache_creation_input_tokens") or 0)
        for i in iterations
    )


async def play(config: Config, **session_options: Any) -> Outcome:
    """Play one conversation of ``config.calls`` tool calls; return what it was billed."""
    started = time.perf_counter()
    async with (
        FakeAnthropicServer(_agent(config.calls), accounting=True) as server,
        AnthropicModel(MODEL, api_key="bench", base_url=server.base_url, stream=False) as model,
        Session(
            _backend(config.result_chars),
            model=model,
            system=SYSTEM,
            max_iterations=config.calls + 5,
            **session_options,
        ) as session,
    ):
        peak = compactions = 0
        async for event in session.stream(f"Look up items 0 to {config.calls - 1}."):
            if isinstance(event, ModelResponded):
                peak = max(peak, _context(event.usage))
            elif event.kind == "compacted":
                compactions += 1
        cost = session.cost
        body = server.message_bodies[-1]
        full = {"tools": body.get("tools"), "system": body.get("system")}
        full["messages"] = [message.to_wire() for message in session.history]
        history_tokens = _count(full)
        sizes = [len(request.body) for request in server.message_requests]
    return Outcome(
        requests=cost.requests,
        input_usd=cost.input_usd + cost.cache_write_usd + cost.cache_read_usd,
        uncached=cost.input_tokens,
        written=cost.cache_write_5m_tokens + cost.cache_write_1h_tokens,
        read=cost.cache_read_tokens,
        peak_context=peak,
        compactions=compactions,
        history_tokens=history_tokens,
        seconds=time.perf_counter() - started,
        request_bytes=sum(sizes),
        largest_request_bytes=max(sizes),
    )


async def play_uncut(config: Config, **session_options: Any) -> Outcome:
    """:func:`play`, sending the whole history after a compaction (the baseline: before the cut)."""
    shape = HistoryScan.shape

    def uncut(self: HistoryScan, request: Any, marker: Any, *, compacted: bool) -> None:
        del compacted
        shape(self, request, marker, compacted=False)

    HistoryScan.shape = uncut  # type: ignore[method-assign]  # the baseline, in this run only
    try:
        return await play(config, **session_options)
    finally:
        HistoryScan.shape = shape  # type: ignore[method-assign]


def _count(body: dict[str, Any]) -> int:
    """The fake's token count of a whole request body, every message included."""
    from conjure_async.testing._fake._accounting import render

    return render(MODEL, body.get("tools"), body.get("system"), body["messages"]).total


def _usd(value: float) -> str:
    return f"${value:,.4f}"


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Run the benchmark; return markdown lines."""
    config = config or (QUICK if quick else FULL)
    cached = await play(config)
    uncached = await play(config, prompt_caching=None)
    compacted = await play(config, compaction=Compaction(trigger=config.threshold))
    whole = await play_uncut(config, compaction=Compaction(trigger=config.threshold))
    saving = 1 - cached.input_usd / uncached.input_usd
    price = PRICES[MODEL]
    lines = [
        (
            f"One conversation of {config.calls} tool calls (one per response; each result "
            f"{config.result_chars:,} characters, about {config.result_chars // 4:,} tokens), "
            f"`AnthropicModel` over HTTP against `FakeAnthropicServer(accounting=True)`, priced as "
            f"`{MODEL}` (${price.input:g} per million input tokens; cache writes 1.25x, reads "
            "0.1x). Tokens are the fake's (one per 4 bytes of each block's JSON)."
        ),
        "",
        "### Billed input cost: default prompt caching against caching off",
        "",
        (
            "| caching | requests | uncached input | cache writes | cache reads | "
            "billed input cost | vs caching off |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, outcome in (("default (`PromptCaching()`)", cached), ("off", uncached)):
        lines.append(
            f"| {name} | {outcome.requests} | {outcome.uncached:,} | {outcome.written:,} | "
            f"{outcome.read:,} | {_usd(outcome.input_usd)} | "
            f"{outcome.input_usd / uncached.input_usd:.1%} |"
        )
    verdict = "meets" if saving >= SAVING_TARGET else "MISSES"
    lines += [
        "",
        (
            f"Caching bills {saving:.1%} less input ({verdict} the target of at least "
            f"{SAVING_TARGET:.0%} less)."
        ),
        "",
        f"### Peak request size with compaction at {config.threshold:,} tokens",
        "",
        (
            "| compaction | requests | compactions | peak context of one request | "
            "whole history at the end |"
        ),
        "|---|---:|---:|---:|---:|",
    ]
    for name, outcome in (
        (f"`Compaction(trigger={config.threshold:_})`", compacted),
        ("off", cached),
    ):
        lines.append(
            f"| {name} | {outcome.requests} | {outcome.compactions} | "
            f"{outcome.peak_context:,} | {outcome.history_tokens:,} |"
        )
    step = config.result_chars // 4 * 2
    bounded = compacted.peak_context <= config.threshold + step and compacted.compactions > 0
    lines += [
        "",
        (
            f"With compaction the largest request stays within the threshold plus one step "
            f"({config.threshold:,} + {step:,} tokens): "
            f"{'yes' if bounded else 'NO'}, while the history the session keeps grows to "
            f"{compacted.history_tokens:,} tokens. The history keeps everything; the request "
            "starts at the last compaction block (the API ignores what precedes it)."
        ),
        "",
        "### Request bytes with compaction: sent from the last compaction block, or whole",
        "",
        "| request messages | requests | bytes sent, all requests | largest request | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, outcome in (
        ("from the last compaction block (default)", compacted),
        ("the whole history (before)", whole),
    ):
        lines.append(
            f"| {name} | {outcome.requests} | {outcome.request_bytes:,} | "
            f"{outcome.largest_request_bytes:,} | {outcome.seconds:.2f} |"
        )
    same = (compacted.input_usd, compacted.peak_context) == (whole.input_usd, whole.peak_context)
    lines += [
        "",
        (
            f"Cutting at the compaction block sends "
            f"{compacted.request_bytes / whole.request_bytes:.1%} of the bytes "
            f"({compacted.largest_request_bytes / whole.largest_request_bytes:.1%} of the largest "
            f"request); what the model reads and is billed is "
            f"{'the same' if same else 'DIFFERENT'}."
        ),
        "",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(asyncio.run(run())))
