"""Prompt caching on by default, over real HTTP: breakpoints sent, reads and writes accounted."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from conjure_async import PromptCaching, Session
from conjure_async.backends import AnthropicBackend, AnthropicSkill
from conjure_async.events import ModelResponded
from conjure_async.messages import Usage
from conjure_async.models import AnthropicModel, AnthropicSDKModel
from conjure_async.testing import FakeAnthropicServer, ScriptedModel, collect, text_response
from tests.anthropic.constants import API_KEY, FAST
from tests.cost.support import SYSTEM, breakpoints, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]

ONE_TOOL = "tool:lookup"


def _total(usage: Usage) -> int:
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


async def _usages(session: Session[Any], message: str) -> list[Usage]:
    events = await collect(session.stream(message))
    return [e.usage for e in events if isinstance(e, ModelResponded)]


@pytest.mark.parametrize("stream", [True, False])
async def test_every_request_reads_the_previous_prefix_across_turns(
    server: FakeAnthropicServer, model_factory: ModelFactory, stream: bool
) -> None:
    """Each request reads all the previous request sent from the cache, also in the next chat."""
    server.queue(tool_loop(3), tool_loop(3), tool_loop(3), tool_loop(3), tool_loop(4), tool_loop(4))
    model = model_factory(stream=stream)
    async with Session(lookup_backend(), model=model, system=SYSTEM) as session:
        first = await _usages(session, "Check the inventory")
        second = await _usages(session, "Check one more item")

    usages = first + second
    assert len(usages) == 6
    assert usages[0].cache_read_input_tokens == 0
    assert (usages[0].cache_creation_input_tokens or 0) == _total(usages[0])
    for before, after in itertools.pairwise(usages):
        assert after.cache_read_input_tokens == _total(before)  # the whole previous prompt
        assert (after.cache_creation_input_tokens or 0) == _total(after) - _total(before)
        assert after.input_tokens == 0
    bodies = server.message_bodies
    assert breakpoints(bodies[0]) == [ONE_TOOL, "system", "message:0"]
    assert breakpoints(bodies[3]) == [ONE_TOOL, "system", "message:4", "message:6"]
    assert breakpoints(bodies[4]) == [ONE_TOOL, "system", "message:6", "message:8"]
    assert all("cache_control" not in str(m.to_wire()) for m in session.history)


async def test_reply_and_session_usage_keep_cache_reads_and_writes(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``Reply.usage`` and ``session.usage`` sum the cache reads and writes the API reported."""
    server.queue(tool_loop(2), tool_loop(2), tool_loop(2))
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as session:
        usages = await _usages(session, "Check")
        reply_usage = session.usage

    assert reply_usage.cache_read_input_tokens == sum(
        u.cache_read_input_tokens or 0 for u in usages
    )
    assert reply_usage.cache_creation_input_tokens == sum(
        u.cache_creation_input_tokens or 0 for u in usages
    )
    assert (reply_usage.cache_read_input_tokens or 0) > 0


async def test_pause_turn_continuation_of_a_hosted_request_reads_the_cache(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A ``pause_turn`` continuation (hosted backend) reads what the paused request wrote."""
    server.queue(
        {
            "content": [
                {
                    "type": "server_tool_use",
                    "id": "srv_1",
                    "name": "bash_code_execution",
                    "input": {"command": "ls"},
                }
            ],
            "stop_reason": "pause_turn",
        },
        text_response("Listed."),
    )
    backend = AnthropicBackend(
        [AnthropicSkill("xlsx")], api_key=API_KEY, base_url=server.base_url, retry=FAST
    )
    async with Session(backend, model=model_factory(), system=SYSTEM) as session:
        usages = await _usages(session, "List the files")

    paused, continued = server.message_bodies
    assert breakpoints(paused) == ["tool:code_execution", "system", "message:0"]
    assert breakpoints(continued) == ["tool:code_execution", "system", "message:0", "message:1"]
    assert continued["container"]["id"].startswith("container_fake")
    assert usages[1].cache_read_input_tokens == _total(usages[0])


async def test_a_scripted_model_sees_no_breakpoint_unless_caching_is_asked_for() -> None:
    """Caching is the Anthropic models' default; a ScriptedModel gets it only when asked."""
    plain = ScriptedModel([text_response("a")])
    asked = ScriptedModel([text_response("b")])
    async with Session(model=plain, system="Be brief.") as session:
        await session.chat("Hi")
    async with Session(model=asked, system="Be brief.", prompt_caching=PromptCaching()) as session:
        await session.chat("Hi")

    assert b"cache_control" not in plain.requests[0].body_json()
    assert plain.requests[0].system == "Be brief."
    assert breakpoints(asked.requests[0].body()) == ["system", "message:0"]


async def test_caching_can_be_turned_off_per_session_or_per_model(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``prompt_caching=None`` (session or model) sends no breakpoint; nothing is cached."""
    server.queue(tool_loop(1), tool_loop(1), tool_loop(1), tool_loop(1))
    backend = lookup_backend()
    async with Session(backend, model=model_factory(), system=SYSTEM, prompt_caching=None) as s:
        off_by_session = await _usages(s, "Check")
    model = model_factory(prompt_caching=None)
    async with Session(lookup_backend(), model=model, system=SYSTEM) as s:
        off_by_model = await _usages(s, "Check")

    assert all(breakpoints(body) == [] for body in server.message_bodies)
    for usage in off_by_session + off_by_model:
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)


async def test_one_hour_breakpoints_write_one_hour_entries(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``PromptCaching(ttl="1h")`` marks 1-hour breakpoints; the API reports 1-hour writes."""
    server.queue(tool_loop(1), tool_loop(1))
    caching = PromptCaching(ttl="1h")
    async with Session(
        lookup_backend(), model=model_factory(), system=SYSTEM, prompt_caching=caching
    ) as session:
        usages = await _usages(session, "Check")

    body = server.message_bodies[0]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    split = usages[0].model_extra["cache_creation"]  # type: ignore[index]
    assert split["ephemeral_1h_input_tokens"] == usages[0].cache_creation_input_tokens
    assert split["ephemeral_5m_input_tokens"] == 0


async def test_a_prompt_under_the_minimum_length_is_not_cached(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A prefix shorter than the model's minimum cacheable length: both counters stay 0."""
    server.queue(text_response("Hi."), text_response("Hi again."))
    async with Session(model=model_factory()) as session:
        usages = await _usages(session, "Hi")
        usages += await _usages(session, "Hi")

    assert breakpoints(server.message_bodies[1]) == ["message:0", "message:2"]
    assert [(u.cache_read_input_tokens, u.cache_creation_input_tokens) for u in usages] == [
        (0, 0),
        (0, 0),
    ]


async def test_entries_expire_after_their_lifetime(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Five minutes after the last hit the prefix is written again, not read."""
    server.queue(text_response("One."), text_response("Two."), text_response("Three."))
    async with Session(model=model_factory(), system=SYSTEM) as session:
        first = await _usages(session, "One")
        server.advance_clock(299)
        second = await _usages(session, "Two")  # a hit refreshes the lifetime
        server.advance_clock(301)
        third = await _usages(session, "Three")

    assert second[0].cache_read_input_tokens == _total(first[0])
    assert third[0].cache_read_input_tokens == 0
    assert third[0].cache_creation_input_tokens == _total(third[0])


@pytest.mark.parametrize(("messages", "reads"), [(1, False), (2, True)])
async def test_the_previous_request_breakpoint_reads_past_the_20_block_lookback(
    server: FakeAnthropicServer, model_factory: ModelFactory, messages: int, reads: bool
) -> None:
    """A step of 12 parallel calls adds 24 blocks: only the second message breakpoint still hits."""
    server.queue(tool_loop(12, per_response=12), tool_loop(12, per_response=12))
    caching = PromptCaching(messages=messages)
    async with Session(
        lookup_backend(size=10), model=model_factory(), system=SYSTEM, prompt_caching=caching
    ) as session:
        usages = await _usages(session, "Check twelve items")

    if reads:
        assert usages[1].cache_read_input_tokens == _total(usages[0])
    else:  # only the system breakpoint hits: the conversation is written again
        assert 0 < (usages[1].cache_read_input_tokens or 0) < _total(usages[0])


async def test_breakpoints_of_the_user_leave_the_total_at_four(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A user message with its own breakpoint: the session drops one of its own (4 at most)."""
    server.queue(tool_loop(1), tool_loop(1))
    content = [
        {
            "type": "text",
            "text": "Reference: " + "r" * 6000,
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": "Now check one item."},
    ]
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as session:
        reply = await session.chat(content)

    assert reply.stop_reason == "end_turn"  # the fake answers 400 past 4 breakpoints
    assert [len(breakpoints(body)) for body in server.message_bodies] == [4, 4]
    assert breakpoints(server.message_bodies[0]) == [ONE_TOOL, "system", "message:0", "message:0"]
    assert breakpoints(server.message_bodies[1]) == [ONE_TOOL, "system", "message:0", "message:2"]


@pytest.mark.parametrize("stream", [True, False])
async def test_the_sdk_adapter_caches_by_default(
    server: FakeAnthropicServer, sdk_client: Any, stream: bool
) -> None:
    """``AnthropicSDKModel`` sessions send breakpoints and read the cache, as by default."""
    server.queue(tool_loop(2), tool_loop(2), tool_loop(2))
    model = AnthropicSDKModel(sdk_client, model="claude-sonnet-4-6", stream=stream)
    async with Session(lookup_backend(), model=model, system=SYSTEM) as session:
        reply = await session.chat("Check")

    assert breakpoints(server.message_bodies[2]) == [ONE_TOOL, "system", "message:2", "message:4"]
    assert (reply.usage.cache_read_input_tokens or 0) > 0
    assert reply.cost is not None
    assert reply.cost.cache_read_tokens == reply.usage.cache_read_input_tokens
