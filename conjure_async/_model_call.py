"""One model call of a turn: the request from the engine's history, the response's events.

The session asks (:meth:`ModelCaller.ask`) when the engine says
:class:`~conjure_async._engine.SendRequest`; the response then goes back to
the engine. Around the call: the backends' request additions, a ``chat``
span, text deltas and the backends' events for server-side blocks (each
noted by the engine, which records server tool calls and created files).
A ``chat()`` nobody streams builds none of those events.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.trace import INVALID_SPAN

from conjure_async._engine import TurnEngine
from conjure_async._exceptions import ModelResponseError
from conjure_async._telemetry import provider_name
from conjure_async.backends._base import Backend
from conjure_async.events import Event, ModelResponded, TextDelta
from conjure_async.messages import (
    ContentBlock,
    JoinedMessages,
    Message,
    MessagesRequest,
    MessagesResponse,
    TextBlock,
    ToolDefinition,
)
from conjure_async.messages import _fast_construct as _build
from conjure_async.models._base import ApiCallback, accepts_on_block, call_model, coerce_response

if TYPE_CHECKING:
    from conjure_async._meter import Meter
    from conjure_async._telemetry import Telemetry
    from conjure_async._tool_execution import Emit

__all__ = ["NO_SPAN", "ModelCaller", "ModelOptions", "overrides", "tool_wire"]

NO_SPAN = contextlib.nullcontext(INVALID_SPAN)
"""Used instead of a span while no tracer provider is configured."""


class ModelOptions(Protocol):
    """What a :class:`ModelCaller` reads from its session at each call."""

    model: ApiCallback
    model_name: str
    max_tokens: int


async def _ignore_text(text: str) -> None:
    """Text sink of a turn nobody streams."""


async def _ignore_block(block: ContentBlock) -> None:
    """Block sink when no backend reads blocks."""


_PLAIN = (False, False)
"""A model without ``stream`` and no backend reading blocks: a chat needs no replay."""


def _responded(response: MessagesResponse) -> Event:
    return _build(
        ModelResponded,
        {
            "kind": "model_responded",
            "stop_reason": response.stop_reason,
            "usage": response.usage,
            "model": response.model,
        },
    )


def tool_wire(definition: ToolDefinition) -> dict[str, Any]:
    """``definition.to_wire()``, sharing the definition's schema instead of copying it.

    A session is built per conversation and its tool list read each time; a
    definition whose schema is plain JSON data (what a backend makes) is not
    copied again per session. Anything else goes through ``to_wire``.
    """
    schema = definition.input_schema
    if definition.__pydantic_extra__ or not _plain_schema(schema):
        return definition.to_wire()
    return {"name": definition.name, "description": definition.description, "input_schema": schema}


_PLAIN_SCHEMAS: dict[int, dict[str, Any]] = {}
"""Schemas found plain JSON, by ``id`` (each kept alive here, so its id is not reused)."""


def _plain_schema(schema: dict[str, Any]) -> bool:
    if _PLAIN_SCHEMAS.get(id(schema)) is schema:
        return True
    if not _plain_json(schema):
        return False
    if len(_PLAIN_SCHEMAS) >= 1024:
        _PLAIN_SCHEMAS.clear()
    _PLAIN_SCHEMAS[id(schema)] = schema
    return True


def _plain_json(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    if kind is list:
        return all(_plain_json(v) for v in value)
    if kind is float:
        return math.isfinite(value)  # JSON mode writes inf and nan otherwise
    return kind in (str, int, bool) or value is None


def overrides(backend: Backend, method: str) -> bool:
    """Whether ``backend`` implements a hook the base class leaves empty."""
    return getattr(type(backend), method) is not getattr(Backend, method)


_HOOKS: dict[type[Backend], tuple[bool, bool, bool]] = {}
"""Per backend class: whether it implements ``prepare_request``, ``handle_block``, and
``handle_response`` or ``after_response`` (a class's methods are looked up once)."""


def _hooks(backend: Backend) -> tuple[bool, bool, bool]:
    kind = type(backend)
    hooks = _HOOKS.get(kind)
    if hooks is None:
        if len(_HOOKS) >= 1024:  # classes made at run time: bounded
            _HOOKS.clear()
        hooks = _HOOKS[kind] = (
            overrides(backend, "prepare_request"),
            overrides(backend, "handle_block"),
            overrides(backend, "handle_response") or overrides(backend, "after_response"),
        )
    return hooks


class ModelCaller:
    """Makes a session's model calls.

    Args:
        engine: The session's turn engine (its history is the request's).
        backends: The session's backends; only those implementing a hook
            are called for it.
        tool_dicts: The client tool definitions sent with each request.
        telemetry: The session's span factory.
    """

    __slots__ = (
        "_betas",
        "_block_backends",
        "_model",
        "_private",
        "_request_backends",
        "_response_backends",
        "_streaming",
        "_telemetry",
        "_tool_dicts",
        "_tools",
        "amend",
        "engine",
        "meter",
        "system",
    )

    def __init__(
        self,
        engine: TurnEngine,
        backends: Sequence[Backend],
        tool_dicts: list[dict[str, Any]],
        *,
        telemetry: Telemetry,
    ) -> None:
        self.engine = engine
        """The engine whose history is sent (a restored session replaces it)."""
        self.system: str | None = None
        """The system prompt (set when the session opens)."""
        self._tool_dicts = tool_dicts
        self.amend: Callable[[MessagesRequest], None] | None = None
        """Changes each request of the turn in progress (typed output sets it)."""
        self._telemetry = telemetry
        # What every request of the session shares (read-only by convention:
        # a backend amends a request with ``model_copy(update=...)``): the tool
        # list, the empty beta list and the private dict naming the history's
        # joined JSON. A request then costs the history snapshot and itself.
        self._tools = tool_dicts or None  # what a request carries (kept with tool_dicts)
        self._betas: list[str] = []
        self._private = {"_joined": JoinedMessages()}
        self._model: ApiCallback | None = None
        self._streaming: tuple[bool, bool] = (False, False)
        self.meter: Meter | None = None
        """Caching, context management, limits and cost around each call (set by the session)."""
        # Tuples: most sessions have no backend implementing a hook, and an
        # empty tuple is one shared object.
        hooks = [(b, _hooks(b)) for b in backends]
        self._request_backends = tuple(b for b, (request, _, _) in hooks if request)
        self._block_backends = tuple(b for b, (_, block, _) in hooks if block)
        self._response_backends = tuple(b for b, (_, _, response) in hooks if response)

    def request(self, options: ModelOptions) -> MessagesRequest:
        """The next request: the history, system prompt and tools, as the backends amend it."""
        request = _build(  # every field, from a literal: the cheapest construction
            MessagesRequest,
            {
                "model": options.model_name,
                "max_tokens": options.max_tokens,
                "messages": self._messages(options),
                "system": self.system,
                "tools": self._tools,
                "tool_choice": None,
                "container": None,
                "stream": None,
                "betas": self._betas,
            },
        )
        # The history's JSON for HTTP models (``join_with``), one dict per session.
        object.__setattr__(request, "__pydantic_private__", self._private)
        if self.amend is not None:
            self.amend(request)
        for backend in self._request_backends:
            request = backend.prepare_request(request)
        return request

    @property
    def tool_dicts(self) -> list[dict[str, Any]]:
        """The client tool definitions sent with each request (the session may replace them)."""
        return self._tool_dicts

    @tool_dicts.setter
    def tool_dicts(self, value: list[dict[str, Any]]) -> None:
        self._tool_dicts = value
        self._tools = value or None

    def _messages(self, options: ModelOptions) -> list[Message]:
        """The request's history: the engine's snapshot, unless caching edits the list.

        Prompt caching marks the last messages by replacing them, in the
        request's own list, with marked copies: that list must be a copy.
        """
        meter = self.meter
        if meter is not None:
            settings = meter.caching(options.model)
            if settings is not None and settings.messages:
                return list(self.engine.history)
        return self.engine.snapshot()  # does not change after this request

    @staticmethod
    def events(response: MessagesResponse) -> list[Event]:
        """A stream's events of a plain model's response: its text as deltas, then the response."""
        events: list[Event] = [
            _build(TextDelta, {"kind": "text_delta", "text": block.text})
            for block in response.content
            if isinstance(block, TextBlock) and block.text
        ]
        events.append(_responded(response))
        return events

    @staticmethod
    def checked(response: Any) -> MessagesResponse:
        """The model's answer as a response (a dict is validated); refuses an empty one.

        Raises:
            ModelResponseError: The response is empty and has no stop reason.
        """
        if type(response) is not MessagesResponse:
            response = coerce_response(response)
        if response.stop_reason is None and not response.content:
            raise ModelResponseError("the model returned an empty response with no stop_reason")
        return response  # type: ignore[no-any-return] # checked above

    async def ask(
        self, options: ModelOptions, emit: Emit | None, *, tracing: bool
    ) -> MessagesResponse:
        """Make one model call; emit its text, block and response events when streaming.

        ``options`` (the session: model, model name, ``max_tokens``) is read
        at each call, not kept: the caller holds no reference to its session.

        Raises:
            ModelResponseError: The response is empty and has no stop reason.
        """
        request = self.request(options)
        meter = self.meter
        synchronous = meter is None or meter.synchronous
        if meter is not None:
            if synchronous:
                meter.prepare(request, options)
            else:
                request = await meter.before_request(request, options)
        model = options.model
        if not tracing and model is self._model and self._streaming is _PLAIN:
            # A callback that does not stream and no backend reading blocks: the
            # model's own coroutine, then (when streaming) its events at once.
            response = self.checked(await model(request))
            if emit is not None:
                for event in self.events(response):
                    await emit(event)
        else:
            if tracing:
                response = self.checked(await self._traced_call(model, request, emit, options))
            else:
                response = self.checked(await self._call(model, request, emit))
            if emit is not None:
                await emit(_responded(response))
        if meter is not None:
            if synchronous:
                meter.count(response, options)
            else:
                await meter.after_response(response, options, emit)
        for backend in self._response_backends:
            for event in backend.handle_response(response):
                await self._backend_event(event, emit)
            for event in await backend.after_response():
                await self._backend_event(event, emit)
        return response

    async def _traced_call(
        self, model: ApiCallback, request: MessagesRequest, emit: Emit | None, options: ModelOptions
    ) -> MessagesResponse:
        """One model call in a ``chat`` span, measured for the metrics."""
        telemetry, provider = self._telemetry, provider_name(model)
        started = time.perf_counter()
        try:
            with telemetry.chat_span(
                options.model_name,
                options.max_tokens,
                provider,
                request=request,
                model_callable=model,
            ) as span:
                response = await self._call(model, request, emit)
                telemetry.record_response(span, response)
        except Exception as exc:
            if telemetry.metrics.active:
                telemetry.metrics.model_call(
                    time.perf_counter() - started,
                    provider=provider,
                    request_model=options.model_name,
                    response=None,
                    error_type=type(exc).__qualname__,
                )
            raise
        if telemetry.metrics.active:
            telemetry.metrics.model_call(
                time.perf_counter() - started,
                provider=provider,
                request_model=options.model_name,
                response=response,
            )
        return response

    async def _call(
        self, model: ApiCallback, request: MessagesRequest, emit: Emit | None
    ) -> MessagesResponse:
        if model is not self._model:  # what the model can do, looked up once per model
            self._model = model
            streams = callable(getattr(model, "stream", None))
            self._streaming = (streams, streams and accepts_on_block(model))
            if not streams and not self._block_backends:
                self._streaming = _PLAIN
        streams, streams_blocks = self._streaming
        if not streams:
            # A plain callback: the whole response at once, its blocks replayed
            # in order (text as deltas) for whoever reads them.
            response = coerce_response(await model(request))
            if emit is not None or self._block_backends:
                for block in response.content:
                    if emit is not None and isinstance(block, TextBlock) and block.text:
                        await emit(_build(TextDelta, {"kind": "text_delta", "text": block.text}))
                    for backend in self._block_backends:
                        for event in backend.handle_block(block):
                            await self._backend_event(event, emit)
            return response

        on_text = _ignore_text
        if emit is not None:
            sink = emit

            async def on_text(text: str) -> None:
                await sink(TextDelta._fast(kind="text_delta", text=text))

        on_block = _ignore_block
        if self._block_backends:

            async def on_block(block: ContentBlock) -> None:
                for backend in self._block_backends:
                    for event in backend.handle_block(block):
                        await self._backend_event(event, emit)

        return await call_model(model, request, on_text, on_block, streams_blocks=streams_blocks)

    async def _backend_event(self, event: Event, emit: Emit | None) -> None:
        """Pass on an event a backend reported for server-side work (hosted tools)."""
        if self.engine.note_event(event) and emit is not None:
            await emit(event)
