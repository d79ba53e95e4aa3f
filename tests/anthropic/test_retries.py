"""Retries: which failures are retried, how long to wait, and the final typed error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from conjure_async._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
)
from conjure_async.anthropic import AnthropicAPI, RetryPolicy
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import (
    Delay,
    DropConnection,
    ErrorResponse,
    FakeAnthropicServer,
    text_response,
)
from tests.anthropic.constants import API_KEY

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _request() -> MessagesRequest:
    return MessagesRequest(
        model="claude-test", max_tokens=64, messages=[Message(role="user", content="Hi")]
    )


@pytest.fixture
def retry_log() -> Iterator[list[dict[str, Any]]]:
    was_configured = structlog.is_configured()
    with capture_logs() as events:
        yield events
    if not was_configured:
        structlog.reset_defaults()


def _retries(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "anthropic.retry"]


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (ErrorResponse(429), "RateLimitError"),
        (ErrorResponse(529), "OverloadedError"),
        (ErrorResponse(500), "InternalServerError"),
        (ErrorResponse(408), "APIStatusError"),
        (ErrorResponse(409), "ConflictError"),
        (DropConnection(), "APIConnectionError"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_retryable_failure_then_success(  # noqa: PLR0917 - fixtures and parameters
    server: FakeAnthropicServer,
    model_factory: ModelFactory,
    retry_log: list[dict[str, Any]],
    fault: Any,
    error_type: str,
    stream: bool,
) -> None:
    server.inject(fault)
    server.queue(text_response("recovered"))

    response = await model_factory(stream=stream).stream(_request(), _ignore_text)

    assert response.text == "recovered"
    assert len(server.message_requests) == 2
    assert [e["error_type"] for e in _retries(retry_log)] == [error_type]


async def _ignore_text(text: str) -> None:
    del text


async def test_retry_count_header_counts_attempts(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(529), times=2)
    server.queue(text_response("ok"))

    await model_factory(stream=False)(_request())

    counts = [r.headers["x-stainless-retry-count"] for r in server.message_requests]
    assert counts == ["0", "1", "2"]


async def test_retry_after_header_sets_the_delay(
    server: FakeAnthropicServer, model_factory: ModelFactory, retry_log: list[dict[str, Any]]
) -> None:
    server.inject(ErrorResponse(429, headers={"retry-after": "0.01"}))
    server.queue(text_response("ok"))

    await model_factory(stream=False)(_request())

    assert [e["delay_s"] for e in _retries(retry_log)] == [0.01]


async def test_retry_after_ms_wins_over_retry_after(
    server: FakeAnthropicServer, model_factory: ModelFactory, retry_log: list[dict[str, Any]]
) -> None:
    server.inject(ErrorResponse(429, headers={"retry-after-ms": "5", "retry-after": "0.5"}))
    server.queue(text_response("ok"))

    await model_factory(stream=False)(_request())

    assert [e["delay_s"] for e in _retries(retry_log)] == [0.005]


async def test_x_should_retry_false_stops_retrying(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(529, headers={"x-should-retry": "false"}))

    with pytest.raises(OverloadedError):
        await model_factory(stream=False)(_request())

    assert len(server.message_requests) == 1


async def test_x_should_retry_true_retries_a_4xx(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(404, headers={"x-should-retry": "true"}))
    server.queue(text_response("ok"))

    response = await model_factory(stream=False)(_request())

    assert response.text == "ok"


async def test_client_errors_are_not_retried(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(404))

    with pytest.raises(NotFoundError):
        await model_factory(stream=False)(_request())

    assert len(server.message_requests) == 1


async def test_final_failure_raises_the_last_typed_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(500), times=1)
    server.inject(ErrorResponse(429, message="slow down"), times=10)

    with pytest.raises(RateLimitError) as caught:
        await model_factory(stream=False, retry=RetryPolicy(2, 0.001, 0.002))(_request())

    assert len(server.message_requests) == 3
    assert (caught.value.status_code, caught.value.message) == (429, "slow down")
    assert caught.value.request_id == "req_fake000003"


async def test_connection_resets_exhaust_into_connection_error(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(DropConnection(), times=10)

    with pytest.raises(APIConnectionError) as caught:
        await model_factory(stream=False, retry=RetryPolicy(1, 0.001, 0.002))(_request())

    assert len(server.message_requests) == 2
    assert caught.value.__cause__ is not None


async def test_zero_retries_makes_one_attempt(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.inject(ErrorResponse(500))

    with pytest.raises(InternalServerError):
        await model_factory(stream=False, retry=RetryPolicy(max_retries=0))(_request())

    assert len(server.message_requests) == 1


async def test_read_timeout_raises_timeout_error(server: FakeAnthropicServer) -> None:
    server.inject(Delay(5))
    server.queue(text_response("too late"))

    async with AnthropicModel(
        api_key=API_KEY,
        base_url=server.base_url,
        stream=False,
        read_timeout=0.05,
        retry=RetryPolicy(max_retries=0),
    ) as model:
        with pytest.raises(APITimeoutError):
            await model(_request())


async def test_creates_are_not_retried_after_a_reset(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    server.inject(DropConnection(), path="/v1/files")

    with pytest.raises(APIConnectionError):
        await api.request("POST", "/v1/files", files={"file": ("a.txt", b"x")}, idempotent=False)

    assert len(server.requests_to("/v1/files")) == 1


async def test_creates_are_retried_on_overload(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    server.inject(ErrorResponse(529), path="/v1/files")

    response = await api.request(
        "POST", "/v1/files", files={"file": ("a.txt", b"x")}, idempotent=False
    )

    assert response.json()["filename"] == "a.txt"


# -- the policy itself --------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_caps() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0, jitter=0.25)

    delays = [policy.delay(n) for n in range(6)]

    bounds = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(0.75 * b <= d <= b for d, b in zip(delays, bounds, strict=True))


def test_retry_after_beyond_the_cap_falls_back_to_backoff() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_retry_after=60.0)

    assert policy.delay(0, {"retry-after": "120"}) <= 0.5


def test_retry_after_http_date_is_understood() -> None:
    import time
    from email.utils import formatdate

    policy = RetryPolicy(initial_delay=0.001)
    header = formatdate(time.time() + 30, usegmt=True)

    assert 25 <= policy.delay(0, {"retry-after": header}) <= 31


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (529, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (413, False),
        (422, False),
    ],
)
def test_should_retry_follows_the_sdk(status: int, expected: bool) -> None:
    assert RetryPolicy().should_retry(status, {}) is expected
