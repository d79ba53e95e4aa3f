"""Opt-in content capture on the chat span, in the GenAI conventions' JSON shapes (#12 item 8).

Spans go through the real OpenTelemetry SDK into an in-memory exporter; the
Anthropic model runs over real HTTP against the fake server on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider, get_meter_provider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conjure_async import Session
from conjure_async._metrics import _records_nothing
from conjure_async._redact import DEFAULT_REDACTOR, REDACTED
from conjure_async._telemetry_content import content_attributes, output_attributes
from conjure_async.backends import NativeBackend, tool
from conjure_async.messages import Message, MessagesRequest, MessagesResponse
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import (
    FakeAnthropicServer,
    ScriptedModel,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.anthropic.constants import FAST

pytestmark = pytest.mark.anyio

CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)

STRANGER = "sk-ant-api03-Stranger_Key-abcdefghijklmnopqrstuvwxyz0123456789"
"""An Anthropic-shaped key a user pasted into a message: found by its shape."""

GATEWAY_TOKEN = "gw-token-7f3a9c1e5b2d8f40"
"""The model's own key, shaped like nothing: found because the model knows it."""


@tool
async def echo(text: str) -> str:
    """Repeat a text.

    Args:
        text: The text to repeat.
    """
    return text


class Traced:
    """A tracer provider exporting to memory, and the spans it kept."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def chats(self) -> list[dict[str, Any]]:
        return [dict(s.attributes or {}) for s in self.spans("chat ")]

    def everything(self) -> str:
        return "".join(s.to_json() for s in self.spans())


async def run_echo(text: str, prompt: str = "go", **options: Any) -> Traced:
    traced = Traced()
    model = ScriptedModel(
        [tool_use_response(tool_call("echo", {"text": text}, id="call_1")), text_response("done")]
    )
    async with Session(
        NativeBackend(echo),
        model=model,
        tracer_provider=traced.provider,
        system="Be brief.",
        **options,
    ) as session:
        await session.chat(prompt)
    return traced


async def test_chat_span_records_messages_instructions_and_tools() -> None:
    """With capture_content, each chat span carries its input, output, system and tools as JSON."""
    traced = await run_echo("hello", capture_content=True)
    first, second = traced.chats()

    assert json.loads(first["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "go"}]}
    ]
    assert json.loads(first["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "echo",
                    "arguments": {"text": "hello"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    (instructions,) = json.loads(first["gen_ai.system_instructions"])
    assert instructions["type"] == "text"
    assert instructions["content"].startswith("Be brief.")
    (definition,) = json.loads(first["gen_ai.tool.definitions"])
    assert definition["type"] == "function"
    assert definition["name"] == "echo"
    assert definition["description"].startswith("Repeat a text.")
    assert definition["parameters"]["properties"]["text"]["type"] == "string"

    # The second call sends the whole history, the tool's result as the user's.
    history = json.loads(second["gen_ai.input.messages"])
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[1]["parts"][0]["type"] == "tool_call"
    (response_part,) = history[2]["parts"]
    assert response_part["type"] == "tool_call_response"
    assert response_part["id"] == "call_1"
    assert "hello" in json.dumps(response_part["response"])
    assert json.loads(second["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "done"}],
            "finish_reason": "stop",
        }
    ]


async def test_nothing_of_the_content_without_opt_in() -> None:
    """Without capture_content no span carries a message, instruction, tool definition or result."""
    traced = await run_echo("hello")
    assert len(traced.chats()) == 2
    for span in traced.spans():
        assert not set(CONTENT_KEYS) & set(span.attributes or {}), span.name
    assert "hello" not in traced.everything()
    assert "Be brief." not in traced.everything()


async def test_a_key_in_a_message_never_reaches_a_span() -> None:
    """A key pasted into the prompt and passed to a tool is redacted in every captured attribute."""
    traced = await run_echo(f"use {STRANGER}", prompt=f"my key is {STRANGER}", capture_content=True)
    dumped = traced.everything()
    assert STRANGER not in dumped
    assert "sk-ant-api03" not in dumped
    first, second = traced.chats()
    assert REDACTED in first["gen_ai.input.messages"]
    assert REDACTED in first["gen_ai.output.messages"]
    assert REDACTED in second["gen_ai.input.messages"]
    (tool_span,) = traced.spans("execute_tool")
    attributes = dict(tool_span.attributes or {})
    assert REDACTED in attributes["gen_ai.tool.call.arguments"]
    assert REDACTED in attributes["gen_ai.tool.call.result"]


async def test_the_models_own_key_is_redacted_from_content() -> None:
    """The Anthropic model's key, shaped like nothing in particular, is removed from content too."""
    traced = Traced()
    reply = {"content": [{"type": "text", "text": f"you said {GATEWAY_TOKEN}"}]}
    async with (
        FakeAnthropicServer([reply], api_key=GATEWAY_TOKEN) as fake,
        AnthropicModel(api_key=GATEWAY_TOKEN, base_url=fake.base_url, retry=FAST) as model,
        Session(model=model, tracer_provider=traced.provider, capture_content=True) as session,
    ):
        await session.chat(f"the token is {GATEWAY_TOKEN}")
    (chat,) = traced.chats()
    assert chat["gen_ai.provider.name"] == "anthropic"
    assert GATEWAY_TOKEN not in traced.everything()
    assert REDACTED in chat["gen_ai.input.messages"]
    assert REDACTED in chat["gen_ai.output.messages"]


def test_anthropic_blocks_map_to_convention_parts() -> None:
    """Thinking, server tools, images, documents and unknown blocks become convention parts."""
    request = MessagesRequest(
        model="m",
        max_tokens=10,
        system=[{"type": "text", "text": "You help."}],
        tools=[
            {"name": "bash", "description": "Run", "input_schema": {"type": "object"}},
            {"type": "code_execution_20250825", "name": "code_execution"},
        ],
        messages=[
            Message(
                role="user",
                content=[
                    {"type": "text", "text": "look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                    {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "container_upload", "file_id": "file_2"},
                ],
            ),
        ],
    )
    captured = content_attributes(request, DEFAULT_REDACTOR)
    assert json.loads(captured["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You help."}
    ]
    assert json.loads(captured["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "bash",
            "description": "Run",
            "parameters": {"type": "object"},
        },
        {"type": "code_execution_20250825", "name": "code_execution"},
    ]
    (message,) = json.loads(captured["gen_ai.input.messages"])
    assert message["parts"] == [
        {"type": "text", "content": "look"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBO"},
        {"type": "file", "modality": "document", "file_id": "file_1"},
        {"type": "uri", "modality": "image", "uri": "https://x/y.png"},
        {"type": "container_upload", "file_id": "file_2"},
    ]
    response = MessagesResponse.model_validate(
        {
            "stop_reason": "max_tokens",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": 1}},
                {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
            ],
        }
    )
    (output,) = json.loads(output_attributes(response, DEFAULT_REDACTOR)["gen_ai.output.messages"])
    assert output["finish_reason"] == "length"
    assert output["parts"] == [
        {"type": "reasoning", "content": "hmm"},
        {
            "type": "server_tool_call",
            "id": "srv_1",
            "name": "web_search",
            "server_tool_call": {"type": "web_search", "arguments": {"q": 1}},
        },
        {
            "type": "server_tool_call_response",
            "id": "srv_1",
            "server_tool_call_response": {"type": "web_search_tool_result", "content": []},
        },
    ]


async def test_input_tokens_include_cached_tokens() -> None:
    """gen_ai.usage.input_tokens counts cache reads and writes, as the conventions define it."""
    traced = Traced()
    usage = {
        "input_tokens": 3,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }
    model = ScriptedModel([text_response("hi", usage=usage)])
    async with Session(model=model, tracer_provider=traced.provider) as session:
        await session.chat("go")
    (chat,) = traced.chats()
    assert chat["gen_ai.usage.input_tokens"] == 123
    assert chat["gen_ai.usage.cache_read.input_tokens"] == 100
    assert chat["gen_ai.usage.cache_creation.input_tokens"] == 20


def test_placeholder_meter_providers_are_recognised_without_private_names() -> None:
    """The API's unset placeholder and its no-op provider record nothing; an SDK provider does."""
    assert _records_nothing(NoOpMeterProvider())
    assert _records_nothing(get_meter_provider())  # no global provider in the test process
    sdk_provider = MeterProvider()
    try:
        assert not _records_nothing(sdk_provider)
    finally:
        sdk_provider.shutdown()
