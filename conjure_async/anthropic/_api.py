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
from typing import Any

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

    def _build(
        self,
        method: str,
        path: str,
        *,
        attempt: int,
        params: Mapping[str, Any] | None,
        json_body: Any,
        files: Any,
        data: Mapping[str, Any] | None,
        betas: Sequence[str],
        headers: Mapping[str, str] | None,
    ) -> httpx2.Request:
        all_headers = self.headers(betas, headers)
        all_headers["x-stainless-retry-count"] = str(attempt)
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        if isinstance(json_body, bytes):  # JSON already encoded (the Messages body)
            all_headers["content-type"] = "application/json"
            return self._client.build_request(
                method,
                f"{self.base_url}{path}",
                params=clean_params or None,
                content=json_body,
                headers=all_headers,
            )
        return self._client.build_request(
            method,
            f"{self.base_url}{path}",
            params=clean_params or None,
            json=json_body,
            files=files,
            data=data,
            headers=all_headers,
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

    def _connection_error(self, exc: httpx2.TransportError, method: str, path: str) -> APIError:
        detail = self.redact(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx2.TimeoutException):
            return APITimeoutError(f"{method} {path} timed out ({type(exc).__name__}: {detail})")
        return APIConnectionError(
            f"{method} {path} failed to connect or lost the connection "
            f"({type(exc).__name__}: {detail})"
        )

    # -- sending -----------------------------------------------------------------

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
        async with self._send(
            method,
            path,
            params=params,
            json_body=json,
            files=files,
            data=data,
            betas=betas,
            headers=headers,
            idempotent=idempotent,
            read_body=True,
        ) as response:
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
        async with self._send(
            method,
            path,
            params=params,
            json_body=json,
            files=None,
            data=None,
            betas=betas,
            headers=headers,
            idempotent=True,
            read_body=False,
        ) as response:
            yield response

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        files: Any,
        data: Mapping[str, Any] | None,
        betas: Sequence[str],
        headers: Mapping[str, str] | None,
        idempotent: bool,
        read_body: bool,
    ) -> AsyncIterator[httpx2.Response]:
        if self._closed:
            raise APIConnectionError(f"{type(self).__name__} is closed")
        with self.redactor.guard():  # every error of every request leaves redacted
            async with self._attempts(
                method,
                path,
                params=params,
                json_body=json_body,
                files=files,
                data=data,
                betas=betas,
                headers=headers,
                idempotent=idempotent,
                read_body=read_body,
            ) as response:
                yield response

    @asynccontextmanager
    async def _attempts(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        files: Any,
        data: Mapping[str, Any] | None,
        betas: Sequence[str],
        headers: Mapping[str, str] | None,
        idempotent: bool,
        read_body: bool,
    ) -> AsyncIterator[httpx2.Response]:
        retries = 0
        limit = None if self.deadline is None else anyio.current_time() + self.deadline
        while True:
            request = self._build(
                method,
                path,
                attempt=retries,
                params=params,
                json_body=json_body,
                files=files,
                data=data,
                betas=betas,
                headers=headers,
            )
            with anyio.move_on_after(_remaining(limit)) as scope:
                outcome = await self._attempt(
                    request, method, path, idempotent=idempotent, read_body=read_body
                )
            if scope.cancelled_caught:
                raise self._deadline_error(method, path)
            if isinstance(outcome, httpx2.Response):
                self._log.debug(
                    "anthropic.response",
                    method=method,
                    path=path,
                    status=outcome.status_code,
                    request_id=outcome.headers.get("request-id"),
                    attempt=retries + 1,
                )
                try:
                    yield outcome
                finally:
                    await outcome.aclose()
                return
            error, cause, retryable, response_headers = outcome
            log_fields = {
                "method": method,
                "path": path,
                "attempt": retries + 1,
                "error_type": type(error).__name__,
                "status": getattr(error, "status_code", None),
                "request_id": error.request_id,
            }
            delay = self.retry.delay(retries, response_headers)
            left = _remaining(limit)
            # a wait that would outlast the deadline is not made: the real error is more useful
            if retryable and retries < self.retry.max_retries and (left is None or delay < left):
                self._log.info("anthropic.retry", delay_s=round(delay, 6), **log_fields)
                retries += 1
                await anyio.sleep(delay)
                continue
            self._log.warning("anthropic.request_failed", **log_fields)
            if cause is error:
                raise error
            raise error from cause

    def _deadline_error(self, method: str, path: str) -> APITimeoutError:
        return APITimeoutError(
            f"{method} {path} exceeded its deadline of {self.deadline:g} s (retries included)"
        )

    async def _attempt(
        self,
        request: httpx2.Request,
        method: str,
        path: str,
        *,
        idempotent: bool,
        read_body: bool,
    ) -> httpx2.Response | tuple[APIError, BaseException, bool, Mapping[str, str]]:
        """One attempt: the usable response, or (error, cause, retryable, headers)."""
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.TransportError as exc:
            connect_failed = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
            return self._connection_error(exc, method, path), exc, idempotent or connect_failed, {}
        try:
            outcome = await self._settle(response, method, path, read_body=read_body)
        except BaseException:  # cancelled (e.g. the deadline) while reading: release it
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
        if outcome is None:
            return response
        error, cause = outcome
        if not isinstance(error, APIStatusError):
            return error, cause, idempotent, {}
        status = error.status_code
        retryable = self.retry.should_retry(status, error.headers) and (
            idempotent or status in (429, 529) or error.headers.get("x-should-retry") == "true"
        )
        return error, cause, retryable, error.headers

    async def _settle(
        self, response: httpx2.Response, method: str, path: str, *, read_body: bool
    ) -> tuple[APIError, BaseException] | None:
        """Read what is needed of ``response``; ``None`` when it is usable."""
        try:
            if response.is_success:
                if read_body:
                    await response.aread()
                return None
            await response.aread()
        except httpx2.TransportError as exc:
            await response.aclose()
            return self._connection_error(exc, method, path), exc
        await response.aclose()
        error = self.status_error(response)
        return error, error


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
