"""The model client under hostile answers: JSON for a stream (#10 item 15), endless pings (17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from conjure_async import Session
from conjure_async._exceptions import APITimeoutError, ModelResponseError
from conjure_async.anthropic import AnthropicAPI
from conjure_async.backends import AnthropicBackend
from conjure_async.backends._hosted import AnthropicSkill
from conjure_async.events import TextDelta
from conjure_async.messages import ContentBlock, Message, MessagesRequest
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import (
    Delay,
    ErrorResponse,
    FakeAnthropicServer,
    PlainJSON,
    StreamPings,
    StreamRaw,
    collect,
    summarize,
)
from tests.anthropic.constants import API_KEY, FAST
from tests.anthropic.responses import saved_files_answer

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _request() -> MessagesRequest:
    return MessagesRequest(
        model="claude-test", max_tokens=64, messages=[Message(role="user", content="Hi")]
    )


# -- item 15: a streamed request answered with plain JSON -------------------------------


async def test_json_answer_to_a_stream_feeds_text_and_block_handlers(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Every text block reaches ``on_text`` and every block ``on_block``, as on the SSE path."""
    server.inject(PlainJSON())
    server.queue(saved_files_answer("file_x", lead="Saving it."))
    texts: list[str] = []
    blocks: list[ContentBlock] = []

    async def on_text(text: str) -> None:
        texts.append(text)

    async def on_block(block: ContentBlock) -> None:
        blocks.append(block)

    response = await model_factory().stream(_request(), on_text, on_block)

    assert server.message_bodies[0]["stream"] is True
    assert "".join(texts) == "Saving it.Done."
    assert blocks == response.content
    assert [b.type for b in blocks] == [
        "text",
        "server_tool_use",
        "bash_code_execution_tool_result",
        "text",
    ]


async def test_json_answer_to_a_stream_reports_hosted_tools_and_files(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """With ``AnthropicBackend``: tool events, text deltas and the created file, as over SSE."""
    file_id = server.add_file(b"a,b\n", "out.csv", mime_type="text/csv")
    server.inject(PlainJSON())
    server.queue(saved_files_answer(file_id, lead="Saving it."))
    backend = AnthropicBackend(
        [AnthropicSkill("xlsx")], api_key=API_KEY, base_url=server.base_url, retry=FAST
    )

    async with Session(backend, model=model_factory()) as session:
        events = await collect(session.stream("Make a CSV"))
        files = session.files

    assert summarize(events) == [
        "tool_started bash_code_execution",
        "tool_finished bash_code_execution ok",
        "file_created out.csv",
        "turn_finished end_turn",
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Saving it.Done."
    reply = events[-1].reply  # type: ignore[union-attr]
    assert [f.file_id for f in reply.files] == [file_id]
    assert reply.files == files


# -- item 17: an overall deadline per model request ----------------------------------------


async def test_endless_pings_end_at_the_request_deadline(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A stream that only pings, forever, raises ``APITimeoutError`` at the deadline."""
    server.inject(StreamPings(after_events=2, interval=0.01))
    server.queue({"content": [{"type": "text", "text": "never finished"}]})
    model = model_factory(deadline=0.5)

    async def ignore(_: Any) -> None:
        return None

    with anyio.fail_after(30), pytest.raises(APITimeoutError, match="deadline"):
        await model.stream(_request(), ignore, ignore)


async def test_deadline_covers_a_json_request_across_retries(
    server: FakeAnthropicServer,
) -> None:
    """The deadline bounds the whole request on an ``AnthropicAPI``, retries included."""
    server.inject(ErrorResponse(529), path="/v1/files")  # retried...
    server.inject(Delay(60), path="/v1/files")  # ...into an answer that never comes
    async with AnthropicAPI(
        api_key=API_KEY, base_url=server.base_url, retry=FAST, deadline=0.5
    ) as api:
        with anyio.fail_after(30), pytest.raises(APITimeoutError, match="deadline"):
            await api.request("GET", "/v1/files")
    assert len(server.requests_to("/v1/files")) == 2


async def test_deadline_is_configurable_and_generous_by_default() -> None:
    """600 s unless told otherwise; the model can set its own, also over a shared API."""
    async with (
        AnthropicModel(api_key=API_KEY) as default,
        AnthropicModel(api_key=API_KEY, deadline=42.0) as own,
        AnthropicAPI(api_key=API_KEY, deadline=7.0) as api,
    ):
        shared = AnthropicModel(api=api)
        assert (default.deadline, default.api.deadline) == (600.0, 600.0)
        assert own.deadline == 42.0
        assert shared.deadline == 7.0


# -- item 16: a streamed tool call cut off by max_tokens --------------------------------


def _cut_tool_call(stop_reason: str) -> bytes:
    """SSE frames of a tool_use whose input JSON stops half-way, then the given stop reason."""
    return (
        'event: content_block_start\ndata: {"type": "content_block_start", "index": 1, '
        '"content_block": {"type": "tool_use", "id": "toolu_cut", "name": "bash_tool", '
        '"input": {}}}\n\n'
        'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 1, '
        '"delta": {"type": "input_json_delta", "partial_json": "{\\"command\\": \\"echo hal"}}\n\n'
        'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 1}\n\n'
        'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": '
        f'"{stop_reason}"}}, "usage": {{"output_tokens": 64}}}}\n\n'
        'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    ).encode()


async def test_a_streamed_tool_call_cut_by_max_tokens_ends_the_turn_unrun(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Partial tool input JSON under max_tokens: no error, the call never runs, reply says so."""
    from tests.helpers import FuncBackend

    server.inject(StreamRaw(data=_cut_tool_call("max_tokens"), after_events=4))
    server.queue({"content": [{"type": "text", "text": "Running it"}]})
    ran: list[dict[str, Any]] = []

    async def bash_tool(args: dict[str, Any]) -> str:
        ran.append(args)
        return "ran"

    async with Session(FuncBackend({"bash_tool": bash_tool}), model=model_factory()) as session:
        reply = await session.chat("go")
    assert reply.stop_reason == "max_tokens"
    assert reply.text.startswith("Running")
    assert ran == []


async def test_partial_tool_input_without_max_tokens_is_a_model_response_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """The same cut input with stop_reason tool_use is garbage: ModelResponseError, named."""
    server.inject(StreamRaw(data=_cut_tool_call("tool_use"), after_events=4))
    server.queue({"content": [{"type": "text", "text": "Running it"}]})

    with pytest.raises(ModelResponseError, match="not valid JSON"):
        await model_factory().stream(_request(), _ignore_text, None)


async def _ignore_text(text: str) -> None:
    del text
