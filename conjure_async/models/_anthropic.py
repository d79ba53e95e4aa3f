"""The built-in model client: the Messages API over ``httpx2``, with retries and streaming."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx2
from pydantic import TypeAdapter

from conjure_async._caching import PromptCaching
from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import APIConnectionError, APITimeoutError, ModelResponseError
from conjure_async._redact import validation_summary
from conjure_async.anthropic._api import DEFAULT_DEADLINE, AnthropicAPI, RetryPolicy, merge_betas
from conjure_async.messages import ContentBlock, MessagesRequest, MessagesResponse, TextBlock
from conjure_async.models._base import BlockHandler, TextHandler
from conjure_async.models._sse import MessageAssembler, aiter_sse

__all__ = ["DEFAULT_MODEL", "AnthropicModel"]

DEFAULT_MODEL = "claude-sonnet-5-5"
"""The model used when none is given."""

_MESSAGES = "/v1/messages"
_COUNT_TOKENS = "/v1/messages/count_tokens"
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "context_management",
        "mcp_servers",
        "speed",
    }
)
"""The request fields ``count_tokens`` takes (no ``max_tokens``, ``stream`` or ``container``)."""


class AnthropicModel(AsyncCloseable):
    """The api callback for the Anthropic Messages API (``POST /v1/messages``).

    One instance holds one pooled ``httpx2.AsyncClient`` (through
    :class:`~conjure_async.anthropic.AnthropicAPI`); share it between sessions
    and close it once with :meth:`aclose` (or ``async with``)::

        async with AnthropicModel("claude-sonnet-5-5") as model:   # ANTHROPIC_API_KEY
            async with Session(AnthropicBackend(skills=[AnthropicSkill("xlsx")]),
                               model=model) as session:
                reply = await session.chat("Build a budget workbook")

    With ``stream=True`` (the default) :meth:`stream` reads the server-sent
    events, awaits ``on_text`` for each text delta (the session turns them into
    ``text_delta`` events) and still returns the complete message; tool inputs
    are parsed when their block completes. With ``stream=False`` it makes one
    JSON request and reports each text block as one delta.

    The ``anthropic-beta`` header is the union of ``betas`` given here and the
    request's own ``betas`` (added by backends, e.g. the hosted one).

    A session over this model caches its prompt: ``prompt_caching`` says
    where the breakpoints go (see :class:`~conjure_async.PromptCaching`;
    ``None``: no caching unless the session asks). :meth:`count_tokens`
    counts a request's input tokens.

    Failures raise typed exceptions after the retries
    (:class:`~conjure_async.RateLimitError`, ``OverloadedError``,
    ``APIConnectionError``...); a body that is not a valid message raises
    :class:`~conjure_async.ModelResponseError`. A mid-stream ``error`` event
    is raised, not retried (text already reported cannot be taken back).

    Args:
        model: The model name sent when a request does not set one; also
            :attr:`model_name`, which the session uses by default.
        api_key: The API key (default ``$ANTHROPIC_API_KEY``). Never logged,
            never shown in a repr or an error.
        base_url: The API root (default ``$ANTHROPIC_BASE_URL`` or
            ``https://api.anthropic.com``); point it at
            :class:`~conjure_async.testing.FakeAnthropicServer` in tests.
        stream: Use SSE streaming in :meth:`stream`.
        betas: ``anthropic-beta`` values sent with every request.
        max_retries: Retries after the first attempt.
        retry: A full :class:`~conjure_async.anthropic.RetryPolicy` (overrides
            ``max_retries``); tests use tiny delays.
        timeout: Per-attempt timeout in seconds (of each network operation).
        connect_timeout: Seconds to connect.
        read_timeout: Seconds to wait for each chunk (default ``timeout``).
        deadline: Seconds one model call may take in all: connecting, every
            retry and its wait, and reading the whole response (a stream that
            keeps sending pings ends here). ``None``: the API's deadline (600 s
            unless the ``api`` given sets another); ``math.inf`` for none.
        default_headers: Extra headers sent with every request.
        api: Use this :class:`~conjure_async.anthropic.AnthropicAPI` (its
            options apply; :meth:`aclose` then leaves it open).
        http_client: Use this ``httpx2.AsyncClient`` (not closed by us).
        prompt_caching: The caching sessions use with this model by default.

    Raises:
        ModelError: No API key was given and ``ANTHROPIC_API_KEY`` is unset.
    """

    provider_name = "anthropic"
    """``gen_ai.provider.name`` in telemetry."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        stream: bool = True,
        betas: Sequence[str] = (),
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
        read_timeout: float | None = None,
        deadline: float | None = None,
        default_headers: Mapping[str, str] | None = None,
        api: AnthropicAPI | None = None,
        http_client: httpx2.AsyncClient | None = None,
        prompt_caching: PromptCaching | None = PromptCaching(),  # noqa: B008 - frozen, shared
    ) -> None:
        self.model_name = model
        self.prompt_caching = prompt_caching
        """The caching sessions use with this model (``Session(prompt_caching="auto")``)."""
        self.streaming = stream
        self.betas = list(betas)
        self._owns_api = api is None
        self.api: AnthropicAPI = api or AnthropicAPI(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            retry=retry,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            deadline=deadline if deadline is not None else DEFAULT_DEADLINE,
            default_headers=default_headers,
            http_client=http_client,
        )
        self.deadline: float | None = deadline if deadline is not None else self.api.deadline
        """Seconds one model call may take in all (``None``: no deadline)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model_name!r}, base_url={self.api.base_url!r}, "
            f"stream={self.streaming}, api_key='**********')"
        )

    async def aclose(self) -> None:
        """Close the HTTP client this model created (idempotent)."""
        if self._owns_api:
            await self.api.aclose()

    def _body(self, request: MessagesRequest, *, stream: bool) -> bytes:
        # JSON bytes built from each message's cached JSON: a long history is
        # joined, not serialized again on every request.
        return request.body_json(model=request.model or self.model_name, stream=stream or None)

    def _betas(self, request: MessagesRequest) -> list[str]:
        return merge_betas(self.betas, request.betas or [])

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        """Send ``request`` as one JSON call and return the complete response.

        Raises:
            APIStatusError: An error status after the retries (a subclass per status).
            APIConnectionError: No response after the retries.
            APITimeoutError: The call took longer than :attr:`deadline`.
            ModelResponseError: The body is not a valid message.
        """
        with self.api.redactor.guard():
            with anyio.move_on_after(self.deadline):
                return await self._call(request)
            raise self._deadline_exceeded()

    async def _call(self, request: MessagesRequest) -> MessagesResponse:
        response = await self.api.request(
            "POST", _MESSAGES, json=self._body(request, stream=False), betas=self._betas(request)
        )
        return self._message(response, "the Messages API returned")

    async def count_tokens(self, request: MessagesRequest) -> int:
        """Count ``request``'s input tokens (``POST /v1/messages/count_tokens``).

        Only the fields the endpoint takes are sent (not ``max_tokens``,
        ``stream`` or ``container``); the betas are sent as for a message.

        Raises:
            APIStatusError: An error status after the retries.
            APIConnectionError: No response after the retries.
            ModelResponseError: The answer has no ``input_tokens`` count.
        """
        body = {k: v for k, v in request.body().items() if k in COUNT_FIELDS}
        body["model"] = request.model or self.model_name
        with self.api.redactor.guard():
            response = await self.api.request(
                "POST", _COUNT_TOKENS, json=body, betas=self._betas(request)
            )
        try:
            count = json.loads(response.content)["input_tokens"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelResponseError("the token count has no input_tokens") from exc
        if not isinstance(count, int):
            raise ModelResponseError("the token count has no input_tokens")
        return count

    def _deadline_exceeded(self) -> APITimeoutError:
        return APITimeoutError(
            f"the model request exceeded its deadline of {self.deadline:g} s (connecting, "
            "retries and reading the whole response included)"
        )

    def _message(self, response: httpx2.Response, said: str) -> MessagesResponse:
        """Parse a JSON answer into a message, or fail clearly (never quoting a key)."""
        request_id = response.headers.get("request-id")
        suffix = f" (request_id={request_id})" if request_id else ""
        try:
            payload = json.loads(response.content)
        except ValueError as exc:
            snippet = self.api.redact(response.text)[:200]
            raise ModelResponseError(
                f"{said} a body that is not JSON: {snippet!r}{suffix}"
            ) from exc
        if not isinstance(payload, dict) or payload.get("type", "message") != "message":
            raise ModelResponseError(f"{said} something that is not a message{suffix}")
        try:
            return MessagesResponse.model_validate(payload)
        except ValueError as exc:
            raise ModelResponseError(
                f"{said} an invalid message: {validation_summary(exc)}{suffix}"
            ) from exc

    async def stream(
        self,
        request: MessagesRequest,
        on_text: TextHandler,
        on_block: BlockHandler | None = None,
    ) -> MessagesResponse:
        """Send ``request``; await ``on_text`` for each text delta; return the full message.

        ``on_block`` receives each content block as soon as it is complete.
        With ``stream=False``, or when the server answers the streamed request
        with plain JSON (some gateways do), the response's blocks are replayed
        in order: one ``on_text`` per text block and one ``on_block`` per
        block, exactly what the event stream would have reported.

        Raises:
            APIStatusError: An error status after the retries, or an ``error``
                event in the stream (status 200, not retried).
            APIConnectionError: No response after the retries, or the stream
                broke off before ``message_stop``.
            APITimeoutError: The call took longer than :attr:`deadline` (a
                stream that only sends pings ends here too).
            ModelResponseError: The stream is malformed.
        """
        with self.api.redactor.guard():
            with anyio.move_on_after(self.deadline):
                return await self._stream(request, on_text, on_block)
            raise self._deadline_exceeded()

    async def _stream(
        self,
        request: MessagesRequest,
        on_text: TextHandler,
        on_block: BlockHandler | None,
    ) -> MessagesResponse:
        if not self.streaming:
            return await _replay(await self._call(request), on_text, on_block)
        async with self.api.stream(
            "POST", _MESSAGES, json=self._body(request, stream=True), betas=self._betas(request)
        ) as http_response:
            request_id = http_response.headers.get("request-id")
            content_type = http_response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                await http_response.aread()
                response = self._message(http_response, "expected an event stream, got")
                return await _replay(response, on_text, on_block)
            assembler = MessageAssembler(request_id=request_id, redact=self.api.redact)
            try:
                async for frame in aiter_sse(http_response.aiter_lines()):
                    if assembler.done:
                        continue  # drain to the end so the connection is reused
                    text = assembler.handle(frame)
                    if text:
                        await on_text(text)
                    if on_block is not None:
                        for raw in assembler.pop_completed():
                            await on_block(_validate_block(raw, request_id))
            except httpx2.TransportError as exc:
                detail = self.api.redact(str(exc)) or type(exc).__name__
                raise APIConnectionError(
                    f"the response stream broke off ({type(exc).__name__}: {detail})",
                    request_id=request_id,
                ) from exc
            return assembler.response()


async def _replay(
    response: MessagesResponse, on_text: TextHandler, on_block: BlockHandler | None
) -> MessagesResponse:
    """Report a complete response's blocks as a stream would have: text, then each block."""
    for block in response.content:
        if isinstance(block, TextBlock) and block.text:
            await on_text(block.text)
        if on_block is not None:
            await on_block(block)
    return response


_block_adapter: TypeAdapter[ContentBlock] = TypeAdapter(ContentBlock)


def _validate_block(raw: dict[str, Any], request_id: str | None) -> ContentBlock:
    """A streamed block, validated as soon as it is complete."""
    try:
        return _block_adapter.validate_python(raw)
    except ValueError as exc:
        suffix = f" (request_id={request_id})" if request_id else ""
        raise ModelResponseError(
            f"the stream sent an invalid content block: {validation_summary(exc)}{suffix}"
        ) from exc
