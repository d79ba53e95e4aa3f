"""The fake Anthropic server itself: lifecycle, recording, scripting, faults."""

from __future__ import annotations

import socket
from typing import Any

import httpx2
import pytest

from conjure_async.messages import MessagesRequest
from conjure_async.testing import (
    ErrorResponse,
    FakeAnthropicServer,
    MalformedJSON,
    message_stream_events,
    text_response,
)
from tests.anthropic.constants import API_KEY

pytestmark = pytest.mark.anyio

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_serves_on_loopback_and_stops_on_exit() -> None:
    async with FakeAnthropicServer() as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        assert server.base_url.startswith("http://127.0.0.1:")
        assert _port_open(port)

    assert not _port_open(port)


async def test_the_listening_socket_says_tcp_so_answers_are_not_delayed() -> None:
    """The socket names IPPROTO_TCP: asyncio then sets TCP_NODELAY (no ~40 ms delayed-ACK stall)."""
    async with FakeAnthropicServer() as server:
        (sock,) = server._sockets

        assert sock.proto == socket.IPPROTO_TCP


async def test_base_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        _ = FakeAnthropicServer().base_url


async def test_records_method_path_headers_and_body(server: FakeAnthropicServer) -> None:
    server.queue(text_response("hi"))

    async with httpx2.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/v1/messages?x=1", json=BODY, headers={**HEADERS, "anthropic-beta": "a,b"}
        )

    recorded = server.requests[0]
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert recorded.query == {"x": ["1"]}
    assert recorded.json == BODY
    assert recorded.betas == ["a", "b"]


async def test_answers_from_a_function_of_the_body() -> None:
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return text_response(f"you said {body['messages'][0]['content']}").to_wire()

    async with FakeAnthropicServer(echo) as server, httpx2.AsyncClient() as client:
        response = await client.post(f"{server.base_url}/v1/messages", json=BODY, headers=HEADERS)

    assert response.json()["content"] == [{"type": "text", "text": "you said hi"}]


async def test_fills_id_and_model(server: FakeAnthropicServer) -> None:
    server.queue({"content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn"})

    async with httpx2.AsyncClient() as client:
        response = await client.post(f"{server.base_url}/v1/messages", json=BODY, headers=HEADERS)

    data = response.json()
    assert data["id"].startswith("msg_fake")
    assert data["model"] == "m"


async def test_empty_queue_answers_500_that_must_not_be_retried(
    server: FakeAnthropicServer,
) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.post(f"{server.base_url}/v1/messages", json=BODY, headers=HEADERS)

    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert "no scripted Messages response" in response.json()["error"]["message"]


async def test_error_response_carries_body_and_headers(server: FakeAnthropicServer) -> None:
    server.inject(ErrorResponse(429, headers={"retry-after": "3"}))

    async with httpx2.AsyncClient() as client:
        response = await client.post(f"{server.base_url}/v1/messages", json=BODY, headers=HEADERS)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "injected error"},
        "request_id": "req_fake000001",
    }


async def test_faults_apply_only_to_their_path(server: FakeAnthropicServer) -> None:
    server.inject(MalformedJSON(), path="/v1/files")
    server.queue(text_response("ok"))

    async with httpx2.AsyncClient() as client:
        messages = await client.post(f"{server.base_url}/v1/messages", json=BODY, headers=HEADERS)
        files = await client.get(f"{server.base_url}/v1/files", headers=HEADERS)

    assert messages.status_code == 200
    assert files.text.startswith('{"type": "message", "content": [oops')


async def test_rejects_a_wrong_api_key(server: FakeAnthropicServer) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{server.base_url}/v1/messages", json=BODY, headers={**HEADERS, "x-api-key": "no"}
        )

    assert response.status_code == 401


async def test_rejects_more_than_eight_container_skills(server: FakeAnthropicServer) -> None:
    skills = [{"type": "anthropic", "skill_id": "xlsx"}] * 9
    body = {
        **BODY,
        "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
        "container": {"skills": skills},
    }

    async with httpx2.AsyncClient() as client:
        response = await client.post(f"{server.base_url}/v1/messages", json=body, headers=HEADERS)

    assert response.status_code == 400


async def test_code_execution_requests_get_a_container(server: FakeAnthropicServer) -> None:
    server.queue(text_response("a"), text_response("b"))
    body = {**BODY, "tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}

    async with httpx2.AsyncClient() as client:
        first = await client.post(f"{server.base_url}/v1/messages", json=body, headers=HEADERS)
        container_id = first.json()["container"]["id"]
        second = await client.post(
            f"{server.base_url}/v1/messages",
            json={**body, "container": container_id},
            headers=HEADERS,
        )

    assert container_id.startswith("container_fake")
    assert second.json()["container"]["id"] == container_id


def test_stream_events_follow_the_documented_order() -> None:
    response = text_response("hi")
    response.content.append(
        MessagesRequest.model_validate(
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}}
                        ],
                    }
                ],
            }
        )
        .messages[0]
        .content[0]
    )  # type: ignore[arg-type]

    names = [name for name, _ in message_stream_events(response, json_chunk_size=100)]

    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
