"""AnthropicModel against the fake server: requests, responses, errors, key hygiene."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from conjure_async import Session
from conjure_async._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ModelError,
    ModelResponseError,
    RateLimitError,
)
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models import StreamingApiCallback
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import ErrorResponse, FakeAnthropicServer, MalformedJSON, text_response
from tests.anthropic.constants import API_KEY

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _request(**extra: object) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [Message(role="user", content="Hi")],
            **extra,
        }
    )


async def test_sends_auth_version_and_json_body(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("Hello"))
    model = model_factory(stream=False)

    await model(_request())

    sent = server.message_requests[0]
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }


async def test_returns_the_parsed_response(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("Hello", usage={"input_tokens": 7, "output_tokens": 3}))

    response = await model_factory(stream=False)(_request())

    assert (response.text, response.stop_reason) == ("Hello", "end_turn")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)


async def test_beta_header_merges_model_and_request_betas(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))
    model = model_factory(stream=False, betas=["a-1", "b-2"])

    await model(_request(betas=["b-2", "c-3"]))

    assert server.message_requests[0].headers["anthropic-beta"] == "a-1,b-2,c-3"
    assert "betas" not in server.message_bodies[0]


async def test_no_beta_header_without_betas(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))

    await model_factory(stream=False)(_request())

    assert "anthropic-beta" not in server.message_requests[0].headers


async def test_model_name_is_what_the_session_sends(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))
    model = model_factory(model="claude-opus-test")

    async with Session(model=model) as session:
        await session.chat("Hi")

    assert model.model_name == "claude-opus-test"
    assert server.message_bodies[0]["model"] == "claude-opus-test"


async def test_is_a_streaming_api_callback(model_factory: ModelFactory) -> None:
    assert isinstance(model_factory(), StreamingApiCallback)


async def test_error_status_raises_typed_error_with_details(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(400, message="messages: Field required"))

    with pytest.raises(BadRequestError) as caught:
        await model_factory(stream=False)(_request())

    error = caught.value
    assert (error.status_code, error.error_type) == (400, "invalid_request_error")
    assert error.message == "messages: Field required"
    assert error.request_id == "req_fake000001"


async def test_wrong_key_raises_authentication_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    with pytest.raises(AuthenticationError):
        await model_factory(stream=False, api_key="sk-wrong")(_request())


async def test_malformed_json_raises_model_response_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(MalformedJSON())

    with pytest.raises(ModelResponseError, match=r"not JSON.*req_fake000001"):
        await model_factory(stream=False)(_request())


async def test_json_that_is_not_a_message_raises_model_response_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue({"content": "not a list", "stop_reason": 5})

    with pytest.raises(ModelResponseError, match="invalid message"):
        await model_factory(stream=False)(_request())


async def test_missing_api_key_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="ANTHROPIC_API_KEY"):
        AnthropicModel()


async def test_api_key_is_read_from_the_environment(
    server: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    server.queue(text_response("ok"))

    async with AnthropicModel(stream=False) as model:
        await model(_request())

    assert server.message_requests[0].headers["x-api-key"] == API_KEY


# -- key hygiene -------------------------------------------------------------------


async def test_repr_hides_the_api_key(model_factory: ModelFactory) -> None:
    model = model_factory()

    assert API_KEY not in repr(model)
    assert API_KEY not in repr(model.api)
    assert API_KEY not in str(vars(model.api))


async def test_errors_never_contain_the_api_key(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(429, message=f"key {API_KEY} is over its limit"), times=4)

    with pytest.raises(RateLimitError) as caught:
        await model_factory(stream=False)(_request())

    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert "[REDACTED]" in caught.value.message


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    was_configured = structlog.is_configured()
    yield
    if not was_configured:
        structlog.reset_defaults()


async def test_api_key_absent_from_stdlib_logs(
    server: FakeAnthropicServer, model_factory: ModelFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server.inject(ErrorResponse(529), times=1)
    server.inject(ErrorResponse(400, message=f"bad key {API_KEY}"))
    server.queue(text_response("ok"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(APIStatusError):
        await model_factory()(_request())

    assert any("anthropic.retry" in r.getMessage() for r in caplog.records)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("restore_structlog")
async def test_api_key_absent_from_structlog_events(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(529))
    server.queue(text_response("ok"))

    with capture_logs() as events:
        await model_factory()(_request())

    assert [e["event"] for e in events if e["event"].startswith("anthropic.")] == [
        "anthropic.retry",
        "anthropic.response",
    ]
    assert API_KEY not in repr(events)
