"""Usage limits: refused before the request that would go over, the history left consistent."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from conjure_async import Session, SessionError, UsageLimitError, UsageLimits
from conjure_async.events import ErrorEvent, ModelResponded
from conjure_async.messages import ToolResultBlock, ToolUseBlock, Usage
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, collect, text_response
from tests.cost.support import SYSTEM, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _assert_consistent(session: Session[object]) -> None:
    """Roles alternate from a user message, and every ``tool_use`` is answered next."""
    history = session.history
    assert history[0].role == "user"
    for before, after in itertools.pairwise(history):
        assert before.role != after.role
        if isinstance(before.content, list):
            calls = {b.id for b in before.content if isinstance(b, ToolUseBlock)}
            answered = (
                {b.tool_use_id for b in after.content if isinstance(b, ToolResultBlock)}
                if isinstance(after.content, list)
                else set()
            )
            assert calls <= answered


async def test_a_chat_request_limit_refuses_the_request_before_it_is_sent(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``max_requests`` per chat: the third request is not sent; the next chat starts afresh."""
    server.queue(tool_loop(5), tool_loop(5), text_response("Fine."))
    limits = UsageLimits(max_requests=2)
    async with Session(lookup_backend(), model=model_factory(), chat_usage_limits=limits) as s:
        with pytest.raises(UsageLimitError) as caught:
            await s.chat("Check five items")
        sent_in_first_chat = len(server.message_requests)
        _assert_consistent(s)
        reply = await s.chat("Stop there and tell me what you have")

    error = caught.value
    assert isinstance(error, SessionError)
    assert (error.limit, error.scope, error.maximum, error.used, error.needed) == (
        "requests",
        "chat",
        2,
        2,
        1,
    )
    assert sent_in_first_chat == 2
    assert reply.text == "Fine."
    assert len(server.message_requests) == 3


async def test_a_session_request_limit_spans_chats_and_restores(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``max_requests`` per session counts every chat's requests, also after ``restore``."""
    server.queue(text_response("One."), tool_loop(1))
    limits = UsageLimits(max_requests=2)
    async with Session(lookup_backend(), model=model_factory(), usage_limits=limits) as session:
        await session.chat("One")
        state = session.dump_state()
    restored = Session.restore(
        state, backend=lookup_backend(), model=model_factory(), usage_limits=limits
    )
    async with restored:
        with pytest.raises(UsageLimitError, match="session's requests limit of 2"):
            await restored.chat("Check one item")
        _assert_consistent(restored)

    assert len(server.message_requests) == 2


async def _usages(session: Session[object], message: str) -> list[Usage]:
    events = await collect(session.stream(message))
    return [e.usage for e in events if isinstance(e, ModelResponded)]


def _total(usage: Usage) -> int:
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


async def test_the_output_limit_lowers_max_tokens_then_refuses(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Each request asks for at most the output left; with none left the request is refused."""
    server.queue(tool_loop(1), tool_loop(1), text_response("More."))
    async with Session(
        lookup_backend(),
        model=model_factory(),
        max_tokens=1000,
        usage_limits=UsageLimits(max_output_tokens=1000),
    ) as session:
        usages = await _usages(session, "Check one item")
        used = sum(u.output_tokens for u in usages)
        session.usage_limits = UsageLimits(max_output_tokens=used)
        with pytest.raises(UsageLimitError) as caught:
            await session.chat("And another")
        _assert_consistent(session)

    assert [b["max_tokens"] for b in server.message_bodies] == [
        1000,
        1000 - usages[0].output_tokens,
    ]
    assert (caught.value.limit, caught.value.used) == ("output_tokens", used)


async def test_the_input_limit_refuses_a_request_the_previous_size_no_longer_fits(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A request needs at least the previous request's input: refused when that would go over."""
    server.queue(tool_loop(2), tool_loop(2), tool_loop(2))
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as probe:
        first = _total((await _usages(probe, "Check two items"))[0])
    server.queue(tool_loop(2), tool_loop(2))
    limits = UsageLimits(max_input_tokens=first * 2 - 1)
    async with Session(
        lookup_backend(), model=model_factory(), system=SYSTEM, usage_limits=limits
    ) as session:
        with pytest.raises(UsageLimitError) as caught:
            await session.chat("Check two items")
        _assert_consistent(session)

    error = caught.value
    assert (error.limit, error.scope, error.used, error.needed) == (
        "input_tokens",
        "session",
        first,
        first,
    )
    assert len(server.message_requests) == 3 + 1  # the probe's three, then one


async def test_an_exact_count_refuses_the_first_request_of_a_chat(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``count_tokens=True`` counts the request first: one too large is never sent."""
    limits = UsageLimits(max_input_tokens=100, count_tokens=True)
    async with Session(model=model_factory(), system=SYSTEM, usage_limits=limits) as session:
        events = []
        with pytest.raises(UsageLimitError) as caught:
            async for event in session.stream("Hi"):
                events.append(event)
        history = session.history

    assert isinstance(events[-1], ErrorEvent)
    assert events[-1].error_type == "UsageLimitError"
    assert caught.value.needed > 100
    assert server.message_requests == []
    assert len(server.requests_to("/v1/messages/count_tokens")) == 1
    assert [(m.role, m.content) for m in history] == [("user", "Hi")]


def test_limits_must_not_be_negative() -> None:
    """A negative limit is refused when it is made."""
    with pytest.raises(ValueError, match="max_requests"):
        UsageLimits(max_requests=-1)
