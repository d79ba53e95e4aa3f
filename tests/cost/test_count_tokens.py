"""``await session.count_tokens()``: the next request, counted by ``/v1/messages/count_tokens``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conjure_async import Compaction, Session
from conjure_async.backends import AnthropicBackend, AnthropicSkill
from conjure_async.events import ModelResponded
from conjure_async.messages import Usage
from conjure_async.models import AnthropicModel, AnthropicSDKModel
from conjure_async.testing import FakeAnthropicServer, ScriptedModel, collect, text_response
from tests.anthropic.constants import API_KEY, FAST
from tests.cost.support import SYSTEM, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _total(usage: Usage) -> int:
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


async def _first_usage(session: Session[Any], message: str) -> Usage:
    events = await collect(session.stream(message))
    return next(e.usage for e in events if isinstance(e, ModelResponded))


async def test_a_prospective_message_is_counted_as_the_next_request(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``count_tokens(message)`` equals the input of the request ``chat(message)`` then sends."""
    server.queue(tool_loop(1), tool_loop(1), text_response("Fine."))
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as session:
        await session.chat("Check one item")
        now = await session.count_tokens()
        counted = await session.count_tokens("How did it go?")
        sent = await _first_usage(session, "How did it go?")

    assert counted == _total(sent)
    assert now < counted
    count_bodies = [r.json for r in server.requests_to("/v1/messages/count_tokens")]
    assert count_bodies[1]["tools"][0]["name"] == "lookup"
    assert "cache_control" not in str(count_bodies)  # a count never writes the cache
    assert count_bodies[1]["messages"][-1] == {"role": "user", "content": "How did it go?"}


async def test_the_hosted_backend_additions_are_counted(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """The hosted code execution tool is in the count; ``container`` is not a count field."""
    backend = AnthropicBackend(
        [AnthropicSkill("xlsx")], api_key=API_KEY, base_url=server.base_url, retry=FAST
    )
    async with Session(backend, model=model_factory(), system=SYSTEM) as session:
        counted = await session.count_tokens("Make a sheet")

    (request,) = server.requests_to("/v1/messages/count_tokens")
    assert request.json["tools"] == [{"type": "code_execution_20250825", "name": "code_execution"}]
    assert "container" not in request.json
    assert "max_tokens" not in request.json
    assert "code-execution-2025-08-25" in request.betas
    assert counted > 0


async def test_the_count_carries_the_context_management_of_the_session(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """With compaction on, the count request has the edit and its beta (as the next request)."""
    async with Session(
        model=model_factory(), system=SYSTEM, compaction=Compaction(trigger=60_000)
    ) as session:
        await session.count_tokens("Hi")

    (request,) = server.requests_to("/v1/messages/count_tokens")
    assert request.json["context_management"]["edits"][0]["type"] == "compact_20260112"
    assert "compact-2026-01-12" in request.betas


async def test_the_sdk_adapter_counts_through_the_client(
    server: FakeAnthropicServer, sdk_client: Any, model_factory: ModelFactory
) -> None:
    """``AnthropicSDKModel.count_tokens`` gives the same count as ``AnthropicModel``'s."""
    sdk = AnthropicSDKModel(sdk_client, model="claude-sonnet-4-6")
    async with Session(lookup_backend(), model=sdk, system=SYSTEM) as session:
        through_sdk = await session.count_tokens("Check")
    own = model_factory(model="claude-sonnet-4-6")
    async with Session(lookup_backend(), model=own, system=SYSTEM) as session:
        through_http = await session.count_tokens("Check")

    assert through_sdk == through_http > 0
    assert len(server.requests_to("/v1/messages/count_tokens")) == 2


async def test_counting_needs_a_model_that_counts_and_something_to_count(
    model_factory: ModelFactory,
) -> None:
    """A scripted model cannot count; an empty conversation needs a message."""
    async with Session(model=ScriptedModel([])) as session:
        with pytest.raises(TypeError, match="cannot count tokens"):
            await session.count_tokens("Hi")
    async with Session(model=model_factory()) as session:
        with pytest.raises(ValueError, match="needs a message"):
            await session.count_tokens()
