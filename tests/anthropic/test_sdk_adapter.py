"""AnthropicSDKModel: the official SDK client as the api callback, against the fake server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conjure_async import Session
from conjure_async._exceptions import MissingDependencyError, RateLimitError
from conjure_async.backends import AnthropicBackend
from conjure_async.backends._hosted import AnthropicSkill
from conjure_async.events import TextDelta
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models import StreamingApiCallback
from conjure_async.models._sdk import AnthropicSDKModel
from conjure_async.testing import (
    ErrorResponse,
    FakeAnthropicServer,
    collect,
    summarize,
    text_response,
)
from tests.anthropic.constants import API_KEY

anthropic = pytest.importorskip("anthropic")

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(server: FakeAnthropicServer) -> AsyncIterator[Any]:
    sdk_client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    yield sdk_client
    await sdk_client.close()


def _request(**extra: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [Message(role="user", content="Hi")],
            **extra,
        }
    )


async def test_create_goes_through_the_sdk(server: FakeAnthropicServer, client: Any) -> None:
    server.queue(text_response("Hello from the SDK"))

    response = await AnthropicSDKModel(client, stream=False)(_request())

    assert response.text == "Hello from the SDK"
    sent = server.message_requests[0]
    assert API_KEY in (sent.headers.get("x-api-key"), sent.headers.get("authorization", "")[7:])
    assert sent.json["messages"] == [{"role": "user", "content": "Hi"}]


async def test_betas_are_sent_as_the_beta_header(server: FakeAnthropicServer, client: Any) -> None:
    server.queue(text_response("ok"))

    await AnthropicSDKModel(client, stream=False)(_request(betas=["skills-2025-10-02"]))

    sent = server.message_requests[0]
    assert sent.betas == ["skills-2025-10-02"]
    assert "betas" not in sent.json


async def test_streaming_reports_text_deltas(server: FakeAnthropicServer, client: Any) -> None:
    server.queue(text_response("Hello streaming world"))
    parts: list[str] = []

    async def on_text(text: str) -> None:
        parts.append(text)

    response = await AnthropicSDKModel(client).stream(_request(), on_text)

    assert "".join(parts) == response.text == "Hello streaming world"
    assert len(parts) == 3


async def test_status_errors_become_typed_errors(server: FakeAnthropicServer, client: Any) -> None:
    server.inject(ErrorResponse(429, message="slow down"))

    with pytest.raises(RateLimitError) as caught:
        await AnthropicSDKModel(client, stream=False)(_request())

    assert (caught.value.message, caught.value.request_id) == ("slow down", "req_fake000001")
    assert isinstance(caught.value.__cause__, anthropic.RateLimitError)


async def test_is_a_streaming_api_callback(client: Any) -> None:
    assert isinstance(AnthropicSDKModel(client), StreamingApiCallback)


async def test_hosted_session_with_pause_turn_through_the_sdk(
    server: FakeAnthropicServer, client: Any
) -> None:
    server.queue(
        {
            "content": [
                {
                    "type": "server_tool_use",
                    "id": "srv_1",
                    "name": "bash_code_execution",
                    "input": {"command": "echo hi"},
                }
            ],
            "stop_reason": "pause_turn",
        },
        {
            "content": [
                {
                    "type": "bash_code_execution_tool_result",
                    "tool_use_id": "srv_1",
                    "content": {
                        "type": "bash_code_execution_result",
                        "stdout": "hi\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [],
                    },
                },
                {"type": "text", "text": "Said hi."},
            ],
            "stop_reason": "end_turn",
        },
    )
    backend = AnthropicBackend([AnthropicSkill("xlsx")], api_key=API_KEY, base_url=server.base_url)

    async with Session(backend, model=AnthropicSDKModel(client, model="claude-test")) as session:
        events = await collect(session.stream("Say hi"))

    assert summarize(events) == [
        "tool_started bash_code_execution",
        "paused 1",
        "tool_finished bash_code_execution ok",
        "turn_finished end_turn",
    ]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Said hi."]
    assert "id" not in server.message_bodies[0]["container"]
    assert server.message_bodies[1]["container"]["id"].startswith("container_fake")


async def test_missing_sdk_raises_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)

    with pytest.raises(MissingDependencyError, match=r"conjure-async\[anthropic\]"):
        AnthropicSDKModel()
