"""Context editing as a session option: the edits sent with their beta, the applied ones exposed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conjure_async import ContextEditing, Session
from conjure_async.events import ContextEdited, ModelResponded
from conjure_async.messages import ToolResultBlock
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, collect
from tests.cost.support import SYSTEM, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]

SIZE = 8_000
"""Characters per tool result: about 2,000 tokens."""


@pytest.mark.parametrize("stream", [True, False])
async def test_old_tool_results_are_cleared_and_the_edits_reported(
    server: FakeAnthropicServer, model_factory: ModelFactory, stream: bool
) -> None:
    """Past the trigger the API clears old results; events and the session report each edit."""
    server.queue(*[tool_loop(10)] * 11)
    editing = ContextEditing(trigger=12_000, keep=2)
    async with Session(
        lookup_backend(size=SIZE),
        model=model_factory(stream=stream),
        system=SYSTEM,
        context_editing=editing,
    ) as session:
        events = await collect(session.stream("Check ten items"))
        reported = session.context_edits
        history = session.history

    edited = [e for e in events if isinstance(e, ContextEdited)]
    assert edited
    assert [edit for e in edited for edit in e.edits] == reported
    last = reported[-1]
    assert last["type"] == "clear_tool_uses_20250919"
    assert last["cleared_tool_uses"] == 8  # ten calls, the last two kept
    assert last["cleared_input_tokens"] > 7 * SIZE // 4
    for body, request in zip(server.message_bodies, server.message_requests, strict=True):
        assert body["context_management"]["edits"] == [
            {
                "type": "clear_tool_uses_20250919",
                "trigger": {"type": "input_tokens", "value": 12_000},
                "keep": {"type": "tool_uses", "value": 2},
            }
        ]
        assert "context-management-2025-06-27" in request.betas
    results = [
        b
        for m in history
        if isinstance(m.content, list)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    ]
    assert all(len(str(r.content)) > SIZE for r in results)  # the history keeps everything
    totals = [e.usage for e in events if isinstance(e, ModelResponded)]
    last_total = (
        totals[-1].input_tokens
        + (totals[-1].cache_read_input_tokens or 0)
        + (totals[-1].cache_creation_input_tokens or 0)
    )
    assert last_total < 10 * SIZE // 4  # the model read far less than the history holds


async def test_clear_at_least_leaves_the_context_alone_when_too_little_would_go(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """With ``clear_at_least`` above what can be cleared, nothing is edited."""
    server.queue(*[tool_loop(4)] * 5)
    editing = ContextEditing(trigger=5_000, keep=3, clear_at_least=50_000)
    async with Session(
        lookup_backend(size=SIZE), model=model_factory(), system=SYSTEM, context_editing=editing
    ) as session:
        await session.chat("Check four items")
        reported = session.context_edits

    assert reported == []
    sent = server.message_bodies[0]["context_management"]["edits"][0]
    assert sent["clear_at_least"] == {"type": "input_tokens", "value": 50_000}


def test_the_thinking_edit_comes_first_and_options_are_checked() -> None:
    """Both edits: thinking first, as the API requires; bad values are refused when made."""
    edits = ContextEditing(
        keep_thinking_turns=2, exclude_tools=["web_search"], clear_tool_inputs=["lookup"]
    ).edits()

    assert [e["type"] for e in edits] == ["clear_thinking_20251015", "clear_tool_uses_20250919"]
    assert edits[0]["keep"] == {"type": "thinking_turns", "value": 2}
    assert edits[1]["exclude_tools"] == ["web_search"]
    assert edits[1]["clear_tool_inputs"] == ["lookup"]
    assert ContextEditing(keep_thinking_turns="all").edits()[0]["keep"] == "all"
    with pytest.raises(ValueError, match="keep_thinking_turns"):
        ContextEditing(keep_thinking_turns=0)
    with pytest.raises(ValueError, match="needs keep_thinking_turns"):
        ContextEditing(clear_tool_uses=False)
