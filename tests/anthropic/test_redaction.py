"""The API key never leaks: exceptions, their causes, headers, log lines and spans (#10 item 14).

Every path runs through real HTTP against the fake server on 127.0.0.1. Three
secrets are checked on each path: the client's own key shaped like an Anthropic
key, a gateway token that does not look like one (found only because the client
knows it), and a stranger's ``sk-ant-`` key (found by its shape).
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from conjure_async import Session
from conjure_async._exceptions import (
    APIError,
    BadRequestError,
    ModelResponseError,
    OverloadedError,
)
from conjure_async.anthropic import AnthropicAPI, FilesClient
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import (
    ErrorResponse,
    FakeAnthropicServer,
    MalformedJSON,
    StreamError,
    StreamRaw,
)
from tests.anthropic.constants import API_KEY, FAST

pytestmark = pytest.mark.anyio

GATEWAY_TOKEN = "gw-token-7f3a9c1e5b2d8f40"
"""A key that does not look like an Anthropic key: only exact matching finds it."""

STRANGER = "sk-ant-api03-Stranger_Key-abcdefghijklmnopqrstuvwxyz0123456789"
"""Someone else's Anthropic key in an upstream message: found by its shape."""

KEYS = [API_KEY, GATEWAY_TOKEN]


def _request() -> MessagesRequest:
    return MessagesRequest(
        model="claude-test", max_tokens=64, messages=[Message(role="user", content="Hi")]
    )


@pytest.fixture(params=KEYS, ids=["anthropic-shaped-key", "gateway-token"])
def key(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def keyed_server(key: str) -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(api_key=key) as fake:
        yield fake


@pytest.fixture
async def model(keyed_server: FakeAnthropicServer, key: str) -> AsyncIterator[AnthropicModel]:
    async with AnthropicModel(api_key=key, base_url=keyed_server.base_url, retry=FAST) as client:
        yield client


def _texts(exc: BaseException) -> Iterator[str]:
    """Every text an exception shows: message, repr, args, attributes, the whole trace."""
    yield str(exc)
    yield repr(exc)
    yield repr(exc.args)
    yield repr(vars(exc))
    yield "".join(traceback.format_exception(exc))
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield str(link)
        yield repr(link)
        link = link.__cause__ or link.__context__


def assert_clean(exc: BaseException, *secrets: str) -> None:
    for text in _texts(exc):
        for secret in secrets:
            assert secret not in text
        # not even a tail of a truncated key (pydantic shortens long reprs with "...")
        for secret in secrets:
            assert secret[-8:] not in text


async def _ignore(_: Any) -> None:
    return None


# -- an SSE error event ----------------------------------------------------------------


async def test_sse_error_event_message_is_redacted(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str
) -> None:
    """An ``error`` event quoting the key and a stranger's key: neither is in the exception."""
    keyed_server.inject(StreamError(message=f"bad key {key}; also {STRANGER}"))
    keyed_server.queue({"content": [{"type": "text", "text": "Hello there"}]})

    with pytest.raises(OverloadedError) as caught:
        await model.stream(_request(), _ignore, _ignore)

    assert_clean(caught.value, key, STRANGER)
    assert "[REDACTED]" in caught.value.message


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    was_configured = structlog.is_configured()
    yield
    if not was_configured:
        structlog.reset_defaults()


@pytest.mark.usefixtures("restore_structlog")
async def test_sse_error_event_is_redacted_in_logs_and_spans(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str
) -> None:
    """Through a session: ``chat.failed``, the span's exception event, trace and status."""
    keyed_server.inject(StreamError(message=f"bad key {key}; also {STRANGER}"))
    keyed_server.queue({"content": [{"type": "text", "text": "Hello there"}]})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    with capture_logs() as logs, pytest.raises(OverloadedError) as caught:
        async with Session(model=model, tracer_provider=provider) as session:
            await session.chat("Hi")

    assert_clean(caught.value, key, STRANGER)
    failed = [e for e in logs if e["event"] == "chat.failed"]
    assert failed
    assert "[REDACTED]" in failed[0]["error"]
    for secret in (key, STRANGER):
        assert secret not in repr(logs)
    spans = exporter.get_finished_spans()
    events = [e for s in spans for e in s.events if e.name == "exception"]
    assert events, "the failing model call records an exception event"
    assert any("[REDACTED]" in str(e.attributes) for e in events)
    assert any(s.status.description and "[REDACTED]" in s.status.description for s in spans)
    dumped = "".join(s.to_json() for s in spans)
    for secret in (key, STRANGER):
        assert secret not in dumped
    provider.shutdown()


# -- malformed SSE frames --------------------------------------------------------------


def _frames(key: str) -> list[bytes]:
    return [
        # not JSON: the snippet quotes the frame
        f'event: content_block_delta\ndata: {{"oops": "{key} {STRANGER}\n\n'.encode(),
        # JSON of the wrong shape: the snippet quotes the frame
        (
            'event: content_block_delta\ndata: {"type": "content_block_delta", '
            f'"delta": {{"text": "{key} {STRANGER}"}}}}\n\n'
        ).encode(),
        # a tool input that is not JSON: the snippet quotes the input
        (
            'event: content_block_start\ndata: {"type": "content_block_start", "index": 5, '
            '"content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}}\n\n'
            'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 5, '
            f'"delta": {{"type": "input_json_delta", "partial_json": "{{\\"k\\": {key} '
            f'{STRANGER}"}}}}\n\n'
            'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 5}\n\n'
            'event: message_delta\ndata: {"type": "message_delta", '
            '"delta": {"stop_reason": "tool_use"}}\n\n'
            'event: message_stop\ndata: {"type": "message_stop"}\n\n'
        ).encode(),
    ]


@pytest.mark.parametrize("frame", [0, 1, 2], ids=["not-json", "wrong-shape", "bad-tool-input"])
async def test_malformed_sse_frame_snippet_is_redacted(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str, frame: int
) -> None:
    """The snippet a ``ModelResponseError`` quotes from a bad frame has no key in it."""
    keyed_server.inject(StreamRaw(data=_frames(key)[frame]))
    keyed_server.queue({"content": [{"type": "text", "text": "Hello there"}]})

    with pytest.raises(ModelResponseError) as caught:
        await model.stream(_request(), _ignore, _ignore)

    assert_clean(caught.value, key, STRANGER)
    assert "[REDACTED]" in str(caught.value)


# -- invalid messages (pydantic validation) ----------------------------------------------


def _invalid_message(key: str) -> dict[str, Any]:
    # tool_use blocks without a name whose ids end with a key: pydantic's error
    # text shows the input, shortened in the middle, which leaves the key's tail
    return {
        "content": [
            {"type": "tool_use", "id": f"padding-padding-{secret}", "input": {}}
            for secret in (key, STRANGER)
        ],
        "stop_reason": "tool_use",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_validation_error_text_is_redacted_in_message_and_cause(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str, stream: bool
) -> None:
    """An invalid message: neither the message nor the chained pydantic error shows a key."""
    keyed_server.queue(_invalid_message(key))

    with pytest.raises(ModelResponseError) as caught:
        if stream:
            await model.stream(_request(), _ignore, _ignore)
        else:
            await model(_request())

    assert_clean(caught.value, key, STRANGER)
    assert "tool_use.name" in str(caught.value)  # still says what is wrong
    assert caught.value.__cause__ is not None


async def test_body_that_is_not_json_is_redacted(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str
) -> None:
    """A 200 whose body is not JSON: the quoted snippet has no key."""
    keyed_server.inject(MalformedJSON(body=f"<html>{key} {STRANGER}</html>"))

    with pytest.raises(ModelResponseError) as caught:
        await model(_request())

    assert_clean(caught.value, key, STRANGER)


# -- error statuses: body and headers -----------------------------------------------------


async def test_error_status_message_and_headers_are_redacted(
    keyed_server: FakeAnthropicServer, model: AnthropicModel, key: str
) -> None:
    """Response headers kept on the exception (an echoing proxy) carry no key."""
    keyed_server.inject(
        ErrorResponse(
            400,
            message=f"rejected {key} and {STRANGER}",
            headers={
                "x-echo-api-key": key,
                "x-upstream": f"token={STRANGER}",
                "x-api-key": key,
            },
        )
    )

    with pytest.raises(BadRequestError) as caught:
        await model(_request())

    assert_clean(caught.value, key, STRANGER)
    assert caught.value.headers["x-echo-api-key"] == "[REDACTED]"
    assert caught.value.headers["x-upstream"] == "token=[REDACTED]"
    assert caught.value.headers["request-id"].startswith("req_")


async def test_files_api_errors_are_redacted(keyed_server: FakeAnthropicServer, key: str) -> None:
    """The Files API helpers go through the same redactor (a non-JSON body, an error status)."""
    keyed_server.inject(MalformedJSON(body=f"oops {key} {STRANGER}"), path="/v1/files")
    keyed_server.inject(
        ErrorResponse(404, message=f"no file for {key}", headers={"x-k": STRANGER}),
        path="/v1/files",
    )
    async with AnthropicAPI(api_key=key, base_url=keyed_server.base_url, retry=FAST) as api:
        files = FilesClient(api)
        with pytest.raises(APIError) as first:
            await files.metadata("file_1")
        with pytest.raises(APIError) as second:
            await files.metadata("file_1")

    assert_clean(first.value, key, STRANGER)
    assert_clean(second.value, key, STRANGER)


def test_model_errors_built_anywhere_hide_anthropic_keys() -> None:
    """Defense in depth: a model error built by any code never shows an ``sk-ant-`` key."""
    error = ModelResponseError(f"the proxy said {STRANGER}")

    assert_clean(error, STRANGER)
    assert "[REDACTED]" in str(error)


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_sdk_adapter_errors_are_redacted(
    keyed_server: FakeAnthropicServer, key: str, stream: bool
) -> None:
    """The official-SDK adapter cleans what it translates, with the SDK client's own key."""
    anthropic = pytest.importorskip("anthropic")
    from conjure_async.models._sdk import AnthropicSDKModel

    keyed_server.inject(
        ErrorResponse(400, message=f"rejected {key} and {STRANGER}", headers={"x-echo": key})
    )
    client = anthropic.AsyncAnthropic(api_key=key, base_url=keyed_server.base_url, max_retries=0)
    try:
        model = AnthropicSDKModel(client, stream=stream)
        with pytest.raises(BadRequestError) as caught:
            if stream:
                await model.stream(_request(), _ignore)
            else:
                await model(_request())
    finally:
        await client.close()

    assert_clean(caught.value, key, STRANGER)
