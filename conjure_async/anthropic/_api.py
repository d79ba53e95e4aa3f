"""The shared HTTP layer of every Anthropic client: auth, headers, retries, errors.

:class:`AnthropicAPI` owns one pooled ``httpx2.AsyncClient``. The model client
(:class:`~conjure_async.models.AnthropicModel`), :class:`SkillsClient` and
:class:`FilesClient` all send through it, so retries, timeouts and error
mapping are written once::

    async with AnthropicAPI() as api:                 # key from ANTHROPIC_API_KEY
        model = AnthropicModel(api=api)
        skills = SkillsClient(api)

Retry policy (the official Python SDK's, ``_base_client.py`` of
https://github.com/anthropics/anthropic-sdk-python; the statuses are those of
https://docs.anthropic.com/en/api/errors): an ``x-should-retry`` response
header decides first; otherwise 408, 409, 429 and
every status >= 500 (529 included) are retried, and so are connection errors
and timeouts. The delay is ``retry-after-ms`` / ``retry-after`` when it is
between 0 and ``max_retry_after`` seconds, else exponential backoff with
jitter. Attempts are bounded by ``max_retries``.

Errors map to the typed exceptions of :mod:`conjure_async._exceptions`
(:func:`~conjure_async._exceptions.status_error_class`), carrying status,
error type, message and request id. The API key never appears in a repr, a
log event or an exception message.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import anyio
import httpx2

from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ModelError,
    status_error_class,
)
from conjure_async._logging import get_logger
from conjure_async._redact import Redactor, Secret

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE",
    "AnthropicAPI",
    "RetryPolicy",
    "merge_betas",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Where requests go unless ``base_url`` or ``ANTHROPIC_BASE_URL`` says otherwise."""

DEFAULT_DEADLINE = 600.0
"""Seconds one request may take in all, retries included, unless told otherwise."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent with every request."""

_ERROR_SNIPPET = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before retrying a failed request.

    The defaults are the official SDK's. Tests make the waits tiny with e.g.
    ``RetryPolicy(initial_delay=0.001, max_delay=0.002)``.

    Attributes:
        max_retries: Retries after the first attempt (``2``: at most 3 attempts).
        initial_delay: Backoff before the first retry, in seconds.
        max_delay: Upper bound of the exponential backoff.
        jitter: Fraction of the backoff removed at random (``0.25``: up to 25 %).
        max_retry_after: A ``retry-after``/``retry-after-ms`` header is obeyed
            only when it is above 0 and at most this many seconds.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0

    def should_retry(self, status_code: int, headers: Mapping[str, str]) -> bool:
        """Whether a response with this status and headers is worth retrying."""
        verdict = headers.get("x-should-retry", "").strip().lower()
        if verdict == "true":
            return True
        if verdict == "false":
            return False
        return status_code in (408, 409, 429) or status_code >= 500

    def delay(self, retries_taken: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before the next attempt.

        Args:
            retries_taken: Retries already made (0 before the first retry).
            headers: The failed response's headers, if there was a response.
        """
        after = retry_after_seconds(headers or {})
        if after is not None and 0 < after <= self.max_retry_after:
            return after
        backoff = min(self.initial_delay * float(2**retries_taken), self.max_delay)
        return backoff * (1 - self.jitter * random.random())  # noqa: S311 - jitter, not crypto


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Parse ``retry-after-ms``, else ``retry-after`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed) - time.time())


def merge_betas(*groups: Iterable[str]) -> list[str]:
    """Merge ``anthropic-beta`` values, keeping first-seen order, without duplicates."""
    merged: list[str] = []
    for group in groups:
        for value in group:
            for item in value.split(","):
                beta = item.strip()
                if beta and beta not in merged:
                    merged.append(beta)
    return merged


class AnthropicAPI(AsyncCloseable):
    """An authenticated, retrying HTTP client for the Anthropic API.

    Owns one ``httpx2.AsyncClient`` (unless you pass ``http_client``, which
    you then close yourself). Close it with :meth:`aclose` or use it as an
    async context manager. Share one instance between the model client and
    the Skills/Files clients to share the connection pool.

    Args:
        api_key: The API key; defaults to ``$ANTHROPIC_API_KEY``.
        base_url: The API root; defaults to ``$ANTHROPIC_BASE_URL``, else
            ``https://api.anthropic.com``.
        max_retries: Retries after the first attempt (ignored when ``retry``
            is given).
        retry: The full retry policy.
        timeout: Overall per-attempt timeout in seconds (write and pool too).
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds to wait for each chunk of the response
            (defaults to ``timeout``).
        deadline: Seconds one :meth:`request` may take in all: connecting,
            every retry and its wait, reading the body (``None``: no
            deadline). :meth:`stream` bounds the wait for the response; the
            reader of the body bounds its reading (the model client applies
            its own deadline to the whole stream).
        default_headers: Extra headers sent with every request.
        anthropic_version: The ``anthropic-version`` header.
        http_client: Use this client instead of creating one (not closed by
            :meth:`aclose`).
        transport: An ``httpx2`` transport for the owned client (e.g.
            ``httpx2.MockTransport`` in unit tests).

    Raises:
        ModelError: No API key was given and ``ANTHROPIC_API_KEY`` is unset.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
        read_timeout: float | None = None,
        deadline: float | None = DEFAULT_DEADLINE,
        default_headers: Mapping[str, str] | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        http_client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ModelError(
                "no Anthropic API key: pass api_key=... or set the ANTHROPIC_API_KEY "
                "environment variable"
            )
        self._key = Secret(key)
        self.redactor = Redactor(self._key)
        """Removes this client's key (and any ``sk-ant-...`` string) from errors."""
        self.base_url = (
            base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self.anthropic_version = anthropic_version
        self._default_headers = {k.lower(): v for k, v in (default_headers or {}).items()}
        self.timeout = httpx2.Timeout(
            timeout, connect=connect_timeout, read=read_timeout if read_timeout else timeout
        )
        self.deadline = deadline
        """Seconds one request may take in all (``None``: no deadline)."""
        self._owns_client = http_client is None
        self._client = http_client or httpx2.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._log = get_logger(component="anthropic.api")
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key='**********', "
            f"max_retries={self.retry.max_retries})"
        )

    # -- lifecycle -----------------------------------------------------------

    async def aclose(self) -> None:
        """Close the owned HTTP client (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    # -- helpers ---------------------------------------------------------------

    def redact(self, text: str) -> str:
        """Return ``text`` with the API key (and any ``sk-ant-...`` string) replaced."""
        return self.redactor.text(text)

    def headers(
        self, betas: Sequence[str] = (), extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The headers of one request (auth, version, merged betas, extras)."""
        headers = {
            "x-api-key": self._key.get(),
            "anthropic-version": self.anthropic_version,
            **self._default_headers,
        }
        merged = merge_betas(
            [headers.pop("anthropic-beta", "")], betas, [(extra or {}).get("anthropic-beta", "")]
        )
        for name, value in (extra or {}).items():
            if name.lower() != "anthropic-beta":
                headers[name.lower()] = value
        if merged:
            headers["anthropic-beta"] = ",".join(merged)
        return headers

    def _build_request(self, call: _Call, attempt: int) -> httpx2.Request:
        """The request of one attempt (``x-stainless-retry-count`` counts the retries)."""
        headers = self.headers(call.betas, call.headers)
        headers["x-stainless-retry-count"] = str(attempt)
        params = {k: v for k, v in (call.params or {}).items() if v is not None} or None
        url = f"{self.base_url}{call.path}"
        if isinstance(call.json_body, bytes):  # JSON already encoded (the Messages body)
            headers["content-type"] = "application/json"
            return self._client.build_request(
                call.method, url, params=params, content=call.json_body, headers=headers
            )
        return self._client.build_request(
            call.method,
            url,
            params=params,
            json=call.json_body,
            files=call.files,
            data=call.data,
            headers=headers,
        )

    def status_error(self, response: httpx2.Response) -> APIStatusError:
        """Build the typed exception for an error response whose body was read."""
        error_type: str | None = None
        message: str | None = None
        request_id = response.headers.get("request-id")
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict):
                error_type = _str_or_none(error.get("type"))
                message = _str_or_none(error.get("message"))
            request_id = request_id or _str_or_none(payload.get("request_id"))
        if message is None:
            # redacted before it is cut, so no piece of a key survives at the cut
            text = self.redact(response.text.strip())[:_ERROR_SNIPPET]
            message = text or response.reason_phrase or "error"
        cls = status_error_class(response.status_code, error_type)
        return cls(
            self.redact(message),
            status_code=response.status_code,
            error_type=error_type,
            request_id=request_id,
            headers=self.redactor.headers({k.lower(): v for k, v in response.headers.items()}),
        )

    def _connection_error(self, exc: httpx2.TransportError, call: _Call) -> APIError:
        detail = self.redact(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx2.TimeoutException):
            return APITimeoutError(f"{call.what} timed out ({type(exc).__name__}: {detail})")
        return APIConnectionError(
            f"{call.what} failed to connect or lost the connection ({type(exc).__name__}: {detail})"
        )

    # -- sending -----------------------------------------------------------------
    #
    # In layers, as httpx sends: request()/stream() -> _send (the client's state,
    # redaction, closing the response) -> _send_handling_retries (the deadline, the
    # retry decision, its log and its wait) -> _send_single_request (build, send and
    # settle one attempt).

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx2.Response:
        """Send a request with retries and return the successful, fully read response.

        Args:
            method: HTTP method.
            path: Path under the base URL (``/v1/messages``).
            params: Query parameters (``None`` values dropped).
            json: JSON body.
            files: Multipart files, as ``httpx2`` takes them.
            data: Multipart/form fields.
            betas: ``anthropic-beta`` values to send.
            headers: Extra headers.
            idempotent: ``False`` for creates: then only failures where the
                server cannot have acted (connect errors, 429, 529, or
                ``x-should-retry: true``) are retried, to avoid duplicates.

        Raises:
            APIStatusError: (a subclass per status) the final attempt failed
                with an error status.
            APIConnectionError: the final attempt got no response.
            APITimeoutError: the final attempt timed out.
        """
        call = _Call(
            method=method,
            path=path,
            params=params,
            json_body=json,
            files=files,
            data=data,
            betas=betas,
            headers=headers,
            idempotent=idempotent,
        )
        async with self._send(call) as response:
            return response

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx2.Response]:
        """Send a request with retries; yield the successful response unread.

        Retries cover getting a successful status; once the body is being
        read nothing is retried. The response is closed on exit.

        Raises:
            APIStatusError, APIConnectionError, APITimeoutError: as :meth:`request`.
        """
        call = _Call(
            method=method,
            path=path,
            params=params,
            json_body=json,
            betas=betas,
            headers=headers,
            read_body=False,
        )
        async with self._send(call) as response:
            yield response

    @asynccontextmanager
    async def _send(self, call: _Call) -> AsyncIterator[httpx2.Response]:
        """Yield the usable response to ``call``, closed on exit; every error leaves redacted."""
        if self._closed:
            raise APIConnectionError(f"{type(self).__name__} is closed")
        with self.redactor.guard():
            response = await self._send_handling_retries(call)
            try:
                yield response
            finally:
                await response.aclose()

    async def _send_handling_retries(self, call: _Call) -> httpx2.Response:
        """Attempt ``call`` until a response is usable, a failure is final, or time is up."""
        limit = None if self.deadline is None else anyio.current_time() + self.deadline
        retries = 0
        while True:
            with anyio.move_on_after(_remaining(limit)) as scope:
                outcome = await self._send_single_request(call, retries)
            if scope.cancelled_caught:
                raise APITimeoutError(
                    f"{call.what} exceeded its deadline of {self.deadline:g} s (retries included)"
                )
            if isinstance(outcome, httpx2.Response):
                self._log.debug(
                    "anthropic.response",
                    **call.log_fields(retries),
                    status=outcome.status_code,
                    request_id=outcome.headers.get("request-id"),
                )
                return outcome
            delay = self._retry_delay(call, outcome, retries, limit)
            fields = {**call.log_fields(retries), **outcome.log_fields()}
            if delay is None:
                self._log.warning("anthropic.request_failed", **fields)
                outcome.raise_()
            self._log.info("anthropic.retry", delay_s=round(delay, 6), **fields)
            retries += 1
            await anyio.sleep(delay)

    def _retry_delay(
        self, call: _Call, failure: _Failure, retries: int, limit: float | None
    ) -> float | None:
        """Seconds to wait before retrying, or ``None`` when ``failure`` is final."""
        if retries >= self.retry.max_retries or not failure.retryable(self.retry, call.idempotent):
            return None
        delay = self.retry.delay(retries, failure.headers)
        left = _remaining(limit)
        # a wait that would outlast the deadline is not made: the real error is more useful
        return delay if left is None or delay < left else None

    async def _send_single_request(self, call: _Call, attempt: int) -> httpx2.Response | _Failure:
        """One attempt: build, send, read what is needed; the usable response or why not."""
        request = self._build_request(call, attempt)
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.TransportError as exc:
            reached = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
            return _Failure(self._connection_error(exc, call), exc, reached_server=reached)
        try:
            failure = await self._settle(response, call)
        except BaseException:  # cancelled (e.g. the deadline) while reading: release it
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
        return response if failure is None else failure

    async def _settle(self, response: httpx2.Response, call: _Call) -> _Failure | None:
        """Read what is needed of ``response``; ``None`` when it is usable."""
        try:
            if response.is_success:
                if call.read_body:
                    await response.aread()
                return None
            await response.aread()
        except httpx2.TransportError as exc:
            await response.aclose()
            return _Failure(self._connection_error(exc, call), exc)
        await response.aclose()
        return _Failure(self.status_error(response))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One logical request as :meth:`AnthropicAPI.request` or ``stream`` received it."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    files: Any = None
    data: Mapping[str, Any] | None = None
    betas: Sequence[str] = ()
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    read_body: bool = True
    """``False`` for :meth:`AnthropicAPI.stream`: the caller reads the body."""

    @property
    def what(self) -> str:
        """``POST /v1/messages``, for error messages."""
        return f"{self.method} {self.path}"

    def log_fields(self, retries: int) -> dict[str, Any]:
        """The fields every log event of an attempt carries."""
        return {"method": self.method, "path": self.path, "attempt": retries + 1}


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt that gave no usable response.

    Attributes:
        error: What the caller gets if this failure is final.
        cause: The vendor exception behind it (``None``: an error status).
        reached_server: ``False`` when the request never reached the server
            (connecting failed): safe to retry even a create.
    """

    error: APIError
    cause: BaseException | None = None
    reached_server: bool = True

    @property
    def headers(self) -> Mapping[str, str]:
        """The error response's headers (``retry-after``...), empty without a response."""
        return self.error.headers if isinstance(self.error, APIStatusError) else {}

    def retryable(self, policy: RetryPolicy, idempotent: bool) -> bool:
        """Whether another attempt may succeed, and is safe for a non-idempotent request."""
        if not isinstance(self.error, APIStatusError):
            return idempotent or not self.reached_server
        status, headers = self.error.status_code, self.error.headers
        return policy.should_retry(status, headers) and (
            idempotent or status in (429, 529) or headers.get("x-should-retry") == "true"
        )

    def log_fields(self) -> dict[str, Any]:
        """What the retry and failure log events say about it."""
        return {
            "error_type": type(self.error).__name__,
            "status": getattr(self.error, "status_code", None),
            "request_id": self.error.request_id,
        }

    def raise_(self) -> NoReturn:
        """Raise :attr:`error`, chained to its cause."""
        if self.cause is None:
            raise self.error
        raise self.error from self.cause


def _remaining(limit: float | None) -> float | None:
    """Seconds left until ``limit`` (an ``anyio.current_time()``), ``None`` for no limit."""
    return None if limit is None else max(0.0, limit - anyio.current_time())


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode_json(api: AnthropicAPI, response: httpx2.Response, what: str) -> Any:
    """Parse a successful response's JSON body, or raise a clear :class:`APIError`."""
    with api.redactor.guard():
        try:
            return json.loads(response.content)
        except ValueError as exc:
            snippet = api.redact(response.text)[:200]
            raise APIError(
                f"{what}: the API returned a body that is not valid JSON: {snippet!r}",
                request_id=response.headers.get("request-id"),
            ) from exc
