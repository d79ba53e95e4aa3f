"""The fake Messages API both HTTP clients talk to: an ``httpx2.MockTransport``.

The handler answers ``POST /v1/messages`` with ``tool_use`` until ``n``
calls were made, then with ``end_turn``. It does not parse the request (the
server side costs the same for both clients and stays out of the numbers);
bodies are pre-encoded JSON.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from benchmarks.peers_common import Stamps, anthropic_message

_HEADERS = {"content-type": "application/json", "request-id": "req_bench"}


class CountingTransport(httpx2.MockTransport):
    """A mock transport that knows how many requests it answered."""

    calls: int = 0


def mock_anthropic_transport(n: int, stamps: Stamps) -> CountingTransport:
    """A transport answering one ``n``-call conversation."""
    bodies = [json.dumps(anthropic_message(i, n)).encode() for i in range(n + 1)]

    def handler(request: httpx2.Request) -> httpx2.Response:
        stamps()
        i = transport.calls
        transport.calls += 1
        if request.method != "POST" or not request.url.path.endswith("/v1/messages"):
            return httpx2.Response(404, json={"type": "error"})
        return httpx2.Response(200, content=bodies[min(i, n)], headers=_HEADERS)

    transport = CountingTransport(handler)
    return transport


def mock_anthropic_model(client: httpx2.AsyncClient, model: str = "claude-sonnet-4-5") -> Any:
    """conjure_async's ``AnthropicModel`` (not streaming) on ``client``, whose transport is the
    mock: every benchmark over HTTP builds it the same way."""
    from conjure_async.models import AnthropicModel

    return AnthropicModel(
        model,
        api_key="bench-key",
        base_url="http://anthropic.bench",
        stream=False,
        http_client=client,
    )
