"""The model seam: "the api callback".

The session talks to the model through any ``async (request) -> response``
callable, where request and response are the Messages API shapes
(:class:`~conjure_async.messages.MessagesRequest`,
:class:`~conjure_async.messages.MessagesResponse`). A plain function works::

    async def my_model(request: MessagesRequest) -> MessagesResponse:
        r = await my_client.post("/v1/messages", json=request.body())
        return MessagesResponse.model_validate(r.json())

A callback that can stream also implements :class:`StreamingApiCallback`:
``stream(request, on_text, on_block=None)`` awaits ``on_text(delta)`` for each
piece of text as it arrives and ``on_block(block)`` for each content block as
soon as it is complete, and returns the complete response. The session then
emits ``text_delta`` events live, and events for server-side tool blocks
(hosted code execution) in their place between them. For a plain callback the
session replays the response's blocks in order after it arrives.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

from conjure_async._exceptions import ModelResponseError
from conjure_async.messages import ContentBlock, MessagesRequest, MessagesResponse, TextBlock

__all__ = [
    "ApiCallback",
    "BlockHandler",
    "StreamingApiCallback",
    "TextHandler",
    "call_model",
    "coerce_response",
]

TextHandler: TypeAlias = Callable[[str], Awaitable[None]]
"""Receives text deltas while a response streams."""

BlockHandler: TypeAlias = Callable[[ContentBlock], Awaitable[None]]
"""Receives each content block of a response as soon as it is complete."""

ApiCallback: TypeAlias = Callable[[MessagesRequest], Awaitable[Any]]
"""Any ``async (MessagesRequest) -> MessagesResponse`` (a dict of that shape works too)."""


@runtime_checkable
class StreamingApiCallback(Protocol):
    """An api callback that can also stream text deltas."""

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        """Return the complete response."""
        ...

    async def stream(
        self,
        request: MessagesRequest,
        on_text: TextHandler,
        on_block: BlockHandler | None = None,
    ) -> MessagesResponse:
        """Await ``on_text`` per text delta and ``on_block`` per completed block.

        Return the complete response. Accepting ``on_block`` is optional: a
        ``stream(request, on_text)`` also works (blocks are then replayed after
        the response).
        """
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


def accepts_on_block(model: Any) -> bool:
    """Whether ``model.stream`` takes an ``on_block`` argument."""
    stream = getattr(model, "stream", None)
    if not callable(stream):
        return False
    try:
        return "on_block" in inspect.signature(stream).parameters
    except (TypeError, ValueError):
        return False


async def call_model(
    model: ApiCallback,
    request: MessagesRequest,
    on_text: TextHandler,
    on_block: BlockHandler,
    *,
    streams_blocks: bool | None = None,
) -> MessagesResponse:
    """Call ``model`` (streaming when it can) and return a validated response.

    Every text delta reaches ``on_text`` and every content block reaches
    ``on_block``, in response order: live when the model streams them,
    replayed from the response otherwise. ``streams_blocks`` caches
    :func:`accepts_on_block` for the model.
    """
    stream = getattr(model, "stream", None)  # a plain callback has none (see the protocol)
    if callable(stream):
        if streams_blocks is None:
            streams_blocks = accepts_on_block(model)
        if streams_blocks:
            return coerce_response(await stream(request, on_text, on_block))
        response = coerce_response(await stream(request, on_text))
        for block in response.content:
            await on_block(block)
        return response
    response = coerce_response(await model(request))
    for block in response.content:
        if isinstance(block, TextBlock) and block.text:
            await on_text(block.text)
        await on_block(block)
    return response
