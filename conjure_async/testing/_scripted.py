"""A scripted model: the api callback for tests and offline demos."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import anyio

from conjure_async._exceptions import ModelResponseError
from conjure_async.messages import MessagesRequest, MessagesResponse, TextBlock
from conjure_async.models._base import BlockHandler, TextHandler, coerce_response

__all__ = [
    "ScriptStep",
    "ScriptedModel",
    "text_response",
    "tool_call",
    "tool_use_response",
]

ScriptStep: TypeAlias = (
    MessagesResponse
    | dict[str, Any]
    | Callable[[MessagesRequest], MessagesResponse | dict[str, Any]]
    | Callable[[MessagesRequest], Awaitable[MessagesResponse | dict[str, Any]]]
)
"""One scripted answer: a response, its dict, or a (sync or async) function of the request."""

_ids = itertools.count(1)


def tool_call(
    name: str, input: dict[str, Any] | None = None, *, id: str | None = None
) -> dict[str, Any]:
    """A ``tool_use`` block for :func:`tool_use_response`."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{next(_ids):06d}",
        "name": name,
        "input": dict(input or {}),
    }


def text_response(
    text: str, *, stop_reason: str = "end_turn", usage: dict[str, int] | None = None
) -> MessagesResponse:
    """A response with one text block."""
    return MessagesResponse.model_validate(
        {
            "id": f"msg_{next(_ids):06d}",
            "model": "scripted",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "usage": usage or {"input_tokens": 10, "output_tokens": 5},
        }
    )


def tool_use_response(
    *calls: dict[str, Any], text: str | None = None, usage: dict[str, int] | None = None
) -> MessagesResponse:
    """A ``stop_reason="tool_use"`` response making ``calls`` (see :func:`tool_call`)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content.extend(calls)
    return MessagesResponse.model_validate(
        {
            "id": f"msg_{next(_ids):06d}",
            "model": "scripted",
            "content": content,
            "stop_reason": "tool_use",
            "usage": usage or {"input_tokens": 10, "output_tokens": 5},
        }
    )


class ScriptedModel:
    """An api callback that answers from a script and records every request.

    Args:
        script: The responses, in order (each a response, a dict, or a function
            of the request), or one function of the request answering every call.
        delay: Seconds to sleep before each answer (to test cancellation).
        text_chunk: When streaming, split text blocks into deltas of this many
            characters (``0``: one delta per block).
        model_name: The model name the session sends.

    Attributes:
        requests: Every request received, in order.
    """

    def __init__(
        self,
        script: Sequence[ScriptStep] | Callable[[MessagesRequest], Any],
        *,
        delay: float = 0.0,
        text_chunk: int = 0,
        model_name: str = "scripted-model",
    ) -> None:
        self._steps: list[ScriptStep] | None = None
        self._function: Callable[[MessagesRequest], Any] | None = None
        if callable(script):
            self._function = script
        else:
            self._steps = list(script)
        self.delay = delay
        self.text_chunk = text_chunk
        self.model_name = model_name
        self.requests: list[MessagesRequest] = []

    @property
    def remaining(self) -> int:
        """How many scripted steps are left (0 for a function script)."""
        return 0 if self._steps is None else len(self._steps) - self._used

    _used = 0

    provider_name = "scripted"
    """``gen_ai.provider.name`` in telemetry: nothing answered but the script."""

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        """Answer ``request`` with the next scripted step."""
        self.requests.append(request)
        if self.delay:
            await anyio.sleep(self.delay)
        if self._function is not None:
            step: Any = self._function
        else:
            assert self._steps is not None
            if self._used >= len(self._steps):
                raise ModelResponseError(
                    f"ScriptedModel ran out of responses after {len(self._steps)} calls"
                )
            step = self._steps[self._used]
            self._used += 1
        if callable(step):
            step = step(request)
            if inspect.isawaitable(step):
                step = await step
        return coerce_response(step)

    async def stream(
        self,
        request: MessagesRequest,
        on_text: TextHandler,
        on_block: BlockHandler | None = None,
    ) -> MessagesResponse:
        """Like ``__call__``, streaming each block in order: text in chunks, then the block."""
        response = await self(request)
        for block in response.content:
            if isinstance(block, TextBlock) and block.text:
                size = self.text_chunk or len(block.text)
                for start in range(0, len(block.text), size):
                    await on_text(block.text[start : start + size])
            if on_block is not None:
                await on_block(block)
        return response
