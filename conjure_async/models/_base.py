"""The model seam: "the api callback".

The session talks to the model through any ``async (request) -> response``
callable, where request and response are the Messages API shapes
(:class:`~conjure_async.messages.MessagesRequest`,
:class:`~conjure_async.messages.MessagesResponse`). A plain function works::

    async def my_model(request: MessagesRequest) -> MessagesResponse:
        r = await my_client.post("/v1/messages", json=request.body())
        return MessagesResponse.model_validate(r.json())

A callback that can stream also implements :class:`StreamingApiCallback`:
``stream(request, on_text)`` awaits ``on_text(delta)`` for each piece of text
as it arrives and returns the complete response. The session then emits
``text_delta`` events live; for a plain callback it emits each text block as
one delta after the response arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

from conjure_async._exceptions import ModelResponseError
from conjure_async.messages import MessagesRequest, MessagesResponse, TextBlock

__all__ = ["ApiCallback", "StreamingApiCallback", "TextHandler", "call_model", "coerce_response"]

TextHandler: TypeAlias = Callable[[str], Awaitable[None]]
"""Receives text deltas while a response streams."""

ApiCallback: TypeAlias = Callable[[MessagesRequest], Awaitable[Any]]
"""Any ``async (MessagesRequest) -> MessagesResponse`` (a dict of that shape works too)."""


@runtime_checkable
class StreamingApiCallback(Protocol):
    """An api callback that can also stream text deltas."""

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        """Return the complete response."""
        ...

    async def stream(self, request: MessagesRequest, on_text: TextHandler) -> MessagesResponse:
        """Await ``on_text`` for each text delta; return the complete response."""
        ...


def coerce_response(raw: Any) -> MessagesResponse:
    """Validate what a model returned into a :class:`MessagesResponse`."""
    if isinstance(raw, MessagesResponse):
        return raw
    if isinstance(raw, dict):
        try:
            return MessagesResponse.model_validate(raw)
        except ValueError as exc:
            raise ModelResponseError(f"the model returned an invalid response: {exc}") from exc
    raise ModelResponseError(
        f"the model returned {type(raw).__name__}, expected MessagesResponse or dict"
    )


async def call_model(
    model: ApiCallback, request: MessagesRequest, on_text: TextHandler
) -> MessagesResponse:
    """Call ``model`` (streaming when it can) and return a validated response."""
    if callable(getattr(model, "stream", None)):
        return coerce_response(await model.stream(request, on_text))  # type: ignore[attr-defined]
    response = coerce_response(await model(request))
    for block in response.content:
        if isinstance(block, TextBlock) and block.text:
            await on_text(block.text)
    return response
