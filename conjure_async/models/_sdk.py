"""An api callback over the official SDK's ``anthropic.AsyncAnthropic`` client."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from conjure_async._caching import PromptCaching
from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    MissingDependencyError,
    ModelResponseError,
    status_error_class,
)
from conjure_async._redact import Redactor, validation_summary
from conjure_async.anthropic._api import merge_betas
from conjure_async.messages import MessagesRequest, MessagesResponse, TextBlock
from conjure_async.models._anthropic import COUNT_FIELDS
from conjure_async.models._base import TextHandler

__all__ = ["AnthropicSDKModel"]

_DEFAULT_MODEL = "claude-sonnet-5-5"


def _anthropic() -> ModuleType:
    try:
        return importlib.import_module("anthropic")
    except ImportError as exc:
        raise MissingDependencyError("anthropic", "anthropic") from exc


class AnthropicSDKModel(AsyncCloseable):
    """Use an ``anthropic.AsyncAnthropic`` client as the session's model.

    For users of the official SDK (the ``[anthropic]`` extra): the client's
    own retries, timeouts and auth apply; requests with betas (the hosted
    backend adds some) go through ``client.beta.messages`` with ``betas=...``::

        from anthropic import AsyncAnthropic

        client = AsyncAnthropic()                      # ANTHROPIC_API_KEY
        model = AnthropicSDKModel(client, model="claude-sonnet-5-5")
        async with Session(backend, model=model) as session:
            reply = await session.chat("Hi")
        await client.close()

    SDK exceptions are translated to this library's tree
    (:class:`~conjure_async.RateLimitError`, ``APIConnectionError``...), chained
    with ``from``; the client's key (and anything shaped like an Anthropic key)
    is redacted from them, their causes and their headers.

    Args:
        client: The ``AsyncAnthropic`` client; without one, a client is created
            from the environment and closed by :meth:`aclose`.
        model: The model name (also :attr:`model_name`, which the session sends).
        stream: Stream responses (``text_delta`` events as text arrives).
        betas: ``anthropic-beta`` values added to every request.
        prompt_caching: The caching sessions use with this model by default
            (see :class:`~conjure_async.PromptCaching`; ``None``: none unless
            the session asks).

    Raises:
        MissingDependencyError: The ``anthropic`` package is not installed.
    """

    provider_name = "anthropic"
    """``gen_ai.provider.name`` in telemetry."""

    def __init__(
        self,
        client: Any = None,
        *,
        model: str = _DEFAULT_MODEL,
        stream: bool = True,
        betas: Sequence[str] = (),
        prompt_caching: PromptCaching | None = PromptCaching(),  # noqa: B008 - frozen, shared
    ) -> None:
        self._sdk = _anthropic()
        self.prompt_caching = prompt_caching
        """The caching sessions use with this model (``Session(prompt_caching="auto")``)."""
        self._owns_client = client is None
        self.client: Any = client if client is not None else self._sdk.AsyncAnthropic()
        self.model_name = model
        self.streaming = stream
        self.betas = list(betas)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, stream={self.streaming})"

    @property
    def _redactor(self) -> Redactor:
        return Redactor(
            getattr(self.client, "api_key", None), getattr(self.client, "auth_token", None)
        )

    async def aclose(self) -> None:
        """Close the client if this adapter created it."""
        if self._owns_client:
            await self.client.close()

    def _prepare(
        self, request: MessagesRequest, *, streaming: bool, count: bool = False
    ) -> tuple[Any, dict[str, Any]]:
        body = request.body()
        body.pop("stream", None)
        if count:
            body = {k: v for k, v in body.items() if k in COUNT_FIELDS}
        if not body.get("model"):
            body["model"] = self.model_name
        betas = merge_betas(self.betas, request.betas or [])
        resource = self.client.beta.messages if betas else self.client.messages
        method: Callable[..., Any] = (
            resource.count_tokens if count else resource.stream if streaming else resource.create
        )
        accepted = set(inspect.signature(method).parameters)
        kwargs = {k: v for k, v in body.items() if k in accepted}
        extra = {k: v for k, v in body.items() if k not in accepted}
        if extra:
            kwargs["extra_body"] = extra
        if betas:
            kwargs["betas"] = betas
        return resource, kwargs

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Raise the SDK's errors as this package's (from the SDK's); others pass."""
        try:
            yield
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc

    def _translate(self, exc: Exception) -> APIError | ModelResponseError | None:
        sdk = self._sdk
        if isinstance(exc, sdk.APIStatusError):
            body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
            nested = body.get("error")
            error: dict[str, Any] = nested if isinstance(nested, dict) else body
            raw_type, raw_message = error.get("type"), error.get("message")
            error_type = raw_type if isinstance(raw_type, str) else None
            message = raw_message if isinstance(raw_message, str) else str(exc)
            cls = status_error_class(exc.status_code, error_type)
            return cls(
                message,
                status_code=exc.status_code,
                error_type=error_type,
                request_id=exc.request_id,
                headers={k.lower(): v for k, v in exc.response.headers.items()},
            )
        if isinstance(exc, sdk.APITimeoutError):
            return APITimeoutError(f"the request timed out: {exc}")
        if isinstance(exc, sdk.APIConnectionError):
            return APIConnectionError(f"connection error: {exc}")
        if isinstance(exc, sdk.APIResponseValidationError):
            return ModelResponseError(f"the SDK returned an unusable response: {exc}")
        if isinstance(exc, sdk.APIError):
            return APIError(str(exc))
        return None

    def _response(self, message: Any) -> MessagesResponse:
        data = message.model_dump(mode="json") if hasattr(message, "model_dump") else message
        try:
            return MessagesResponse.model_validate(data)
        except ValueError as exc:
            raise ModelResponseError(
                f"the SDK returned an invalid message: {validation_summary(exc)}"
            ) from exc

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        """Send ``request`` with ``messages.create`` and return the response.

        Raises:
            APIStatusError: (a subclass per status) the API answered an error.
            APIConnectionError: no response.
            ModelResponseError: the response is unusable.
        """
        with self._redactor.guard():
            resource, kwargs = self._prepare(request, streaming=False)
            with self._translated():
                message = await resource.create(**kwargs)
            return self._response(message)

    async def count_tokens(self, request: MessagesRequest) -> int:
        """Count ``request``'s input tokens with the client's ``messages.count_tokens``.

        Raises:
            APIStatusError: (a subclass per status) the API answered an error.
            APIConnectionError: no response.
        """
        with self._redactor.guard():
            resource, kwargs = self._prepare(request, streaming=False, count=True)
            with self._translated():
                counted = await resource.count_tokens(**kwargs)
            return int(counted.input_tokens)

    async def stream(self, request: MessagesRequest, on_text: TextHandler) -> MessagesResponse:
        """Stream ``request``; await ``on_text`` per text delta; return the full message.

        With ``stream=False`` it calls :meth:`__call__` and reports each text
        block once.
        """
        if not self.streaming:
            response = await self(request)
            for block in response.content:
                if isinstance(block, TextBlock) and block.text:
                    await on_text(block.text)
            return response
        with self._redactor.guard():
            resource, kwargs = self._prepare(request, streaming=True)
            with self._translated():
                async with resource.stream(**kwargs) as events:
                    async for text in events.text_stream:
                        await on_text(text)
                    message = await events.get_final_message()
            return self._response(message)
