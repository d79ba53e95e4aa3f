"""The fake server's accounting, asked directly over HTTP: the documented rules and their 400s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from conjure_async.testing import FakeAnthropicServer, text_response
from tests.anthropic.constants import API_KEY

pytestmark = pytest.mark.anyio

LONG = "Reference material. " * 400
"""About 2,000 tokens: over every model's minimum cacheable length."""
CC = {"type": "ephemeral"}


@pytest.fixture
async def http(server: FakeAnthropicServer) -> AsyncIterator[httpx2.AsyncClient]:
    """A plain HTTP client with the API's headers."""
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(base_url=server.base_url, headers=headers) as client:
        yield client


def _body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": messages, **extra}


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def _text(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, **extra}


async def _usage(
    http: httpx2.AsyncClient, server: FakeAnthropicServer, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    server.queue(text_response("ok"))
    response = await http.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()["usage"]
    return usage


async def test_a_top_level_cache_control_marks_the_last_block(
    http: httpx2.AsyncClient, server: FakeAnthropicServer
) -> None:
    """Automatic caching: the second request reads what the first wrote at its last block."""
    first = _body([_user(_text(LONG))], cache_control=CC)
    second = _body(
        [_user(_text(LONG)), {"role": "assistant", "content": "ok"}, _user(_text("More"))],
        cache_control=CC,
    )
    one = await _usage(http, server, first)
    two = await _usage(http, server, second)

    assert one["input_tokens"] == 0
    assert one["cache_creation_input_tokens"] > 0
    assert two["cache_read_input_tokens"] == one["cache_creation_input_tokens"]
    assert server.cache_entries == 2


async def test_a_changed_prefix_misses(
    http: httpx2.AsyncClient, server: FakeAnthropicServer
) -> None:
    """Another key order in a ``tool_use`` input is another prefix: nothing is read."""

    def body(order: dict[str, int]) -> dict[str, Any]:
        return _body(
            [
                _user(_text(LONG)),
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": order}],
                },
                _user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "1",
                        "cache_control": CC,
                    }
                ),
            ]
        )

    await _usage(http, server, body({"a": 1, "b": 2}))
    same = await _usage(http, server, body({"a": 1, "b": 2}))
    reordered = await _usage(http, server, body({"b": 2, "a": 1}))

    assert same["cache_read_input_tokens"] > 0
    assert reordered["cache_read_input_tokens"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _body([_user(*[_text(f"{i}", cache_control=CC) for i in range(5)])]),
            "A maximum of 4 blocks with cache_control",
        ),
        (
            _body(
                [
                    _user(
                        _text("a", cache_control={"type": "ephemeral", "ttl": "5m"}),
                        _text("b", cache_control={"type": "ephemeral", "ttl": "1h"}),
                    )
                ]
            ),
            "must not come after",
        ),
        (
            _body(
                [
                    _user(_text("a")),
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": "x", "cache_control": CC}],
                    },
                ]
            ),
            "thinking block",
        ),
        (_body([_user(_text("", cache_control=CC))]), "empty"),
        (
            _body([_user(_text("a", cache_control={"type": "ephemeral", "ttl": "2h"}))]),
            "'5m' or '1h'",
        ),
    ],
)
async def test_breakpoints_the_api_refuses_are_400s(
    http: httpx2.AsyncClient, server: FakeAnthropicServer, body: dict[str, Any], message: str
) -> None:
    """Five breakpoints, 1h after 5m, a marked thinking block or empty text, a bad ttl: 400."""
    server.queue(text_response("unused"))
    response = await http.post("/v1/messages", json=body)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


COMPACT = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50_000}}
CLEAR = {"type": "clear_tool_uses_20250919"}
THINK = {"type": "clear_thinking_20251015", "keep": "all"}


@pytest.mark.parametrize(
    ("edits", "betas", "message"),
    [
        ([COMPACT], "", "requires the 'anthropic-beta: compact-2026-01-12' header"),
        ([CLEAR], "compact-2026-01-12", "context-management-2025-06-27"),
        (
            [{**COMPACT, "trigger": {"type": "input_tokens", "value": 1000}}],
            "compact-2026-01-12",
            "at least 50000",
        ),
        ([{"type": "summarize_everything"}], "compact-2026-01-12", "unknown edit type"),
        ([CLEAR, THINK], "context-management-2025-06-27", "must come before"),
    ],
)
async def test_context_management_the_api_refuses_is_a_400(
    http: httpx2.AsyncClient,
    server: FakeAnthropicServer,
    edits: list[dict[str, Any]],
    betas: str,
    message: str,
) -> None:
    """A missing beta, a trigger under 50,000, an unknown edit, thinking after tools: 400."""
    server.queue(text_response("unused"))
    body = _body([_user(_text("Hi"))], context_management={"edits": edits})
    headers = {"anthropic-beta": betas} if betas else {}
    response = await http.post("/v1/messages", json=body, headers=headers)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


async def test_count_tokens_counts_what_a_message_request_would_process(
    http: httpx2.AsyncClient, server: FakeAnthropicServer
) -> None:
    """The count equals the message request's input (read + written + uncached)."""
    messages = [_user(_text(LONG, cache_control=CC), _text("Question?"))]
    tools = [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    counted = await http.post(
        "/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-6", "messages": messages, "tools": tools, "system": "S"},
    )
    usage = await _usage(http, server, _body(messages, tools=tools, system="S"))
    refused = await http.post("/v1/messages/count_tokens", json=_body(messages))

    assert counted.status_code == 200
    total = (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )
    assert counted.json() == {"input_tokens": total}
    assert refused.status_code == 400
    assert "max_tokens: Extra inputs are not permitted" in refused.json()["error"]["message"]
    assert server.message_requests[0].json["messages"] == messages
