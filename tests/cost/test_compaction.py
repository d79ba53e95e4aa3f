"""Server-side compaction as a session option, through real HTTP and a fake that compacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conjure_async import Compaction, Session
from conjure_async.events import Compacted, Event, ModelResponded
from conjure_async.messages import Usage
from conjure_async.models import AnthropicModel, AnthropicSDKModel
from conjure_async.testing import FakeAnthropicServer, collect, summarize, text_response
from tests.cost.support import SYSTEM, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]

TRIGGER = 50_000
BIG = 20_000
"""Characters per tool result: about 5,000 tokens, so ten calls cross the trigger."""


def _total(usage: Usage) -> int:
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


def _compaction_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        block
        for message in messages
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "compaction"
    ]


@pytest.mark.parametrize("stream", [True, False])
async def test_the_conversation_is_compacted_and_the_block_kept(
    server: FakeAnthropicServer, model_factory: ModelFactory, stream: bool
) -> None:
    """Past the trigger the API compacts; the block stays in the history; requests shrink."""
    server.queue(*[tool_loop(14)] * 15)
    async with Session(
        lookup_backend(size=BIG),
        model=model_factory(stream=stream, model="claude-sonnet-4-6"),
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER),
    ) as session:
        events: list[Event] = await collect(session.stream("Check fourteen items"))
        history = [m.to_wire() for m in session.history]
        reply = events[-1].reply  # type: ignore[union-attr]

    compacted = [e for e in events if isinstance(e, Compacted)]
    assert len(compacted) == 1
    assert compacted[0].summary is not None
    assert compacted[0].summary.startswith("Summary")
    blocks = _compaction_blocks(history)
    assert [b["content"] for b in blocks] == [compacted[0].summary]
    assert blocks[0]["encrypted_content"].startswith("fake-compaction-")
    for body, request in zip(server.message_bodies, server.message_requests, strict=True):
        assert body["context_management"] == {
            "edits": [
                {
                    "type": "compact_20260112",
                    "trigger": {"type": "input_tokens", "value": TRIGGER},
                    "pause_after_compaction": False,
                }
            ]
        }
        assert "compact-2026-01-12" in request.betas
    totals = [_total(e.usage) for e in events if isinstance(e, ModelResponded)]
    after = totals[totals.index(min(totals)) :]
    assert max(totals) < TRIGGER + 2 * BIG // 4  # at most one step past the trigger
    assert after[0] < 5_000  # the compacted context: tools, system, the summary
    assert reply.cost is not None
    assert reply.cost.total_input_tokens > sum(totals)  # the compaction's own pass is billed


async def test_a_pause_after_compaction_continues_like_pause_turn(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``pause_after=True``: the turn stops at the summary, then the session sends it back."""
    server.queue(*[tool_loop(12)] * 13)
    async with Session(
        lookup_backend(size=BIG),
        model=model_factory(),
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER, pause_after=True),
    ) as session:
        events = await collect(session.stream("Check twelve items"))
        history = session.history

    kinds = summarize(events, ignore=("text_delta", "model_responded", "tool_output"))
    index = kinds.index("compacted")
    assert kinds[index + 1] == "paused 1"
    assert kinds[-1] == "turn_finished end_turn"
    continued = [
        body for body in server.message_bodies if body["messages"][-1]["role"] == "assistant"
    ]
    assert len(continued) == 1
    assert continued[0]["messages"][-1]["content"][0]["type"] == "compaction"
    merged = [m for m in history if m.role == "assistant" and isinstance(m.content, list)]
    with_summary = [m for m in merged if m.content[0].type == "compaction"]  # type: ignore[union-attr]
    assert len(with_summary) == 1
    assert len(with_summary[0].content) > 1  # the continuation joined the paused message


async def test_compaction_survives_dump_and_restore(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A restored session sends the compaction block back; the API reads from it on."""
    server.queue(*[tool_loop(12)] * 13)
    async with Session(
        lookup_backend(size=BIG),
        model=model_factory(),
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER),
    ) as session:
        await session.chat("Check twelve items")
        state = json.dumps(session.dump_state())
    saved = _compaction_blocks(json.loads(state)["messages"])
    server.queue(text_response("All twelve were fine."))
    restored = Session.restore(
        state,
        backend=lookup_backend(size=BIG),
        model=model_factory(),
        system=SYSTEM,
        compaction=Compaction(trigger=TRIGGER),
    )
    async with restored:
        events = await collect(restored.stream("Summarize"))

    assert len(saved) == 1
    sent = server.message_bodies[-1]
    assert _compaction_blocks(sent["messages"]) == saved
    usage = next(e.usage for e in events if isinstance(e, ModelResponded))
    assert _total(usage) < TRIGGER // 2  # read from the summary on, not the whole history
    assert not any(isinstance(e, Compacted) for e in events)


def test_compaction_options_are_checked() -> None:
    """A trigger under the API's minimum, or empty instructions, are refused when made."""
    with pytest.raises(ValueError, match="50,000"):
        Compaction(trigger=10_000)
    with pytest.raises(ValueError, match="instructions"):
        Compaction(instructions="  ")
    assert Compaction(instructions="Keep file names.").edit()["instructions"] == (
        "Keep file names."
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_compaction_through_the_sdk_adapter(
    server: FakeAnthropicServer, sdk_client: Any, stream: bool
) -> None:
    """Through ``AnthropicSDKModel`` (its beta client) the block and the event come through too."""
    server.queue(*[tool_loop(12)] * 13)
    model = AnthropicSDKModel(sdk_client, model="claude-sonnet-4-6", stream=stream)
    async with Session(
        lookup_backend(size=BIG),
        model=model,
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER),
    ) as session:
        events = await collect(session.stream("Check twelve items"))
        history = [m.to_wire() for m in session.history]

    compacted = [e for e in events if isinstance(e, Compacted)]
    assert len(compacted) == 1
    assert compacted[0].summary is not None
    assert [b["content"] for b in _compaction_blocks(history)] == [compacted[0].summary]
    assert all("compact-2026-01-12" in r.betas for r in server.message_requests)
