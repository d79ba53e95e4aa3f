"""Streaming: SSE frames in, text deltas out, the full message assembled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conjure_async import Session
from conjure_async._exceptions import (
    APIConnectionError,
    ModelResponseError,
    OverloadedError,
)
from conjure_async.events import TextDelta
from conjure_async.messages import (
    Message,
    MessagesRequest,
    ServerToolResultBlock,
    ServerToolUseBlock,
    ToolUseBlock,
)
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.models._sse import MessageAssembler, ServerSentEvent, SSEDecoder
from conjure_async.testing import (
    FakeAnthropicServer,
    MalformedJSON,
    StreamDrop,
    StreamError,
    collect,
    message_stream_events,
    text_response,
)

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _request() -> MessagesRequest:
    return MessagesRequest(
        model="claude-test", max_tokens=64, messages=[Message(role="user", content="Hi")]
    )


class _Texts:
    def __init__(self) -> None:
        self.parts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.parts.append(text)


MIXED: dict[str, Any] = {
    "id": "msg_1",
    "model": "claude-test",
    "content": [
        {"type": "text", "text": "Let me compute that for you."},
        {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "bash_code_execution",
            "input": {"command": "python3 -c 'print(4)'"},
        },
        {
            "type": "bash_code_execution_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": {
                "type": "bash_code_execution_result",
                "stdout": "4\n",
                "stderr": "",
                "return_code": 0,
                "content": [],
            },
        },
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "acme", "n": 3}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 12, "output_tokens": 34},
}


async def test_text_deltas_arrive_in_order(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("Hello streaming world"))
    texts = _Texts()

    await model_factory().stream(_request(), texts)

    assert texts.parts == ["Hello st", "reaming ", "world"]


async def test_streamed_request_sets_stream_true(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))

    await model_factory().stream(_request(), _Texts())

    assert server.message_bodies[0]["stream"] is True


async def test_stream_assembles_the_full_message(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(MIXED)

    response = await model_factory().stream(_request(), _Texts())

    assert response.to_wire() == {
        **MIXED,
        "type": "message",
        "role": "assistant",
        "usage": {**MIXED["usage"], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


async def test_tool_inputs_are_parsed_at_block_stop(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(MIXED)

    response = await model_factory().stream(_request(), _Texts())

    server_use, result, tool_use = response.content[1:]
    assert isinstance(server_use, ServerToolUseBlock)
    assert server_use.input == {"command": "python3 -c 'print(4)'"}
    assert isinstance(result, ServerToolResultBlock)
    assert isinstance(tool_use, ToolUseBlock)
    assert tool_use.input == {"q": "acme", "n": 3}


async def test_container_and_stop_reason_come_from_message_delta(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(
        {
            **MIXED,
            "stop_reason": "pause_turn",
            "container": {"id": "container_1", "expires_at": "2030-01-01T00:00:00Z"},
        }
    )

    response = await model_factory().stream(_request(), _Texts())

    assert response.stop_reason == "pause_turn"
    assert response.container == {"id": "container_1", "expires_at": "2030-01-01T00:00:00Z"}


async def test_session_streams_text_delta_events_live(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("Hello streaming world"))

    async with Session(model=model_factory()) as session:
        events = await collect(session.stream("Hi"))

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["Hello st", "reaming ", "world"]


async def test_non_streaming_mode_reports_each_text_block_once(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("Hello streaming world"))
    texts = _Texts()

    await model_factory(stream=False).stream(_request(), texts)

    assert texts.parts == ["Hello streaming world"]
    assert "stream" not in server.message_bodies[0]


async def test_mid_stream_error_event_raises_typed_error_without_retry(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(StreamError(after_events=4, error_type="overloaded_error"))
    server.queue(text_response("Hello streaming world"), text_response("unused"))
    texts = _Texts()

    with pytest.raises(OverloadedError) as caught:
        await model_factory().stream(_request(), texts)

    assert caught.value.status_code == 200
    assert caught.value.request_id == "req_fake000001"
    assert texts.parts == ["Hello st"]
    assert len(server.message_requests) == 1


async def test_connection_reset_mid_stream_raises_connection_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(StreamDrop(after_events=4))
    server.queue(text_response("Hello streaming world"), text_response("unused"))

    with pytest.raises(APIConnectionError):
        await model_factory().stream(_request(), _Texts())

    assert len(server.message_requests) == 1


async def test_malformed_json_instead_of_a_stream_is_a_model_response_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(MalformedJSON())

    with pytest.raises(ModelResponseError, match="expected an event stream"):
        await model_factory().stream(_request(), _Texts())


# -- the assembler on its own ---------------------------------------------------------


def _frames(events: list[tuple[str, dict[str, Any]]]) -> list[ServerSentEvent]:
    import json

    return [ServerSentEvent(name, json.dumps(data)) for name, data in events]


def test_unknown_events_and_pings_are_ignored() -> None:
    events = message_stream_events(text_response("hi"))
    events.insert(2, ("future_event", {"type": "future_event", "x": 1}))
    assembler = MessageAssembler()

    for frame in _frames(events):
        assembler.handle(frame)

    assert assembler.response().text == "hi"


def test_stream_without_message_stop_is_a_connection_error() -> None:
    assembler = MessageAssembler(request_id="req_1")
    for frame in _frames(message_stream_events(text_response("hi"))[:-1]):
        assembler.handle(frame)

    with pytest.raises(APIConnectionError, match="message_stop"):
        assembler.response()


def test_invalid_tool_input_json_is_a_model_response_error() -> None:
    assembler = MessageAssembler()
    events = message_stream_events(MIXED)
    broken = [
        (name, {**data, "delta": {"type": "input_json_delta", "partial_json": "{oops"}})
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
        else (name, data)
        for name, data in events
    ]

    for frame in _frames(broken):
        assembler.handle(frame)
    # only the stop reason tells a cut input (max_tokens) from garbage: decided at the end
    with pytest.raises(ModelResponseError, match="not valid JSON"):
        assembler.response()


def test_malformed_event_data_is_a_model_response_error() -> None:
    with pytest.raises(ModelResponseError, match="malformed JSON"):
        MessageAssembler().handle(ServerSentEvent("message_start", "{nope"))


def test_decoder_joins_multiline_data_and_skips_comments() -> None:
    decoder = SSEDecoder()
    lines = [": comment", "event: ping", 'data: {"a":', "data: 1}", ""]

    frames = [f for line in lines if (f := decoder.feed(line)) is not None]

    assert frames == [ServerSentEvent("ping", '{"a":\n1}')]
