"""OpenTelemetry spans for chats, model calls and tool calls.

Only ``opentelemetry-api`` is used: with no SDK installed, or no provider
configured, every span is a cheap no-op. Span names and attributes follow the
OpenTelemetry GenAI semantic conventions:

=========================  ================================================
span                       attributes
=========================  ================================================
``invoke_agent conjure``   gen_ai.operation.name, gen_ai.provider.name,
                           gen_ai.conversation.id,
                           gen_ai.request.model, gen_ai.usage.*,
                           gen_ai.response.finish_reasons
``chat {model}``           gen_ai.operation.name, gen_ai.provider.name,
                           gen_ai.request.model, gen_ai.request.max_tokens,
                           gen_ai.response.id, gen_ai.response.model,
                           gen_ai.response.finish_reasons, gen_ai.usage.*;
                           with ``capture_content=True`` also
                           gen_ai.system_instructions, gen_ai.input.messages,
                           gen_ai.output.messages, gen_ai.tool.definitions
``execute_tool {name}``    gen_ai.tool.name, gen_ai.tool.call.id,
                           gen_ai.tool.type, gen_ai.tool.description,
                           error.type (on failure),
                           conjure.backend, conjure.skill,
                           conjure.tool.exit_code, conjure.tool.duration_s,
                           conjure.tool.output_bytes, conjure.tool.timed_out;
                           with ``capture_content=True`` also
                           gen_ai.tool.call.arguments, gen_ai.tool.call.result
=========================  ================================================

The provider is the model callable's ``provider_name`` attribute
(``anthropic`` for the Anthropic models), else ``unknown``.

Captured content (:mod:`conjure_async._telemetry_content` builds it, only
when ``capture_content`` is on) passes through the model's
:class:`~conjure_async._redact.Redactor`: its API key and anything shaped
like an Anthropic key never reach a span. The input messages are joined from
each message's redacted JSON, kept while the message is in the history
(:class:`~conjure_async._telemetry_content.InputMessages`): a model call
costs its new messages, not the whole history again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)

from conjure_async._metrics import Metrics, input_tokens
from conjure_async._redact import DEFAULT_REDACTOR, Redactor
from conjure_async._telemetry_content import (
    InputMessages,
    content_attributes,
    output_attributes,
)
from conjure_async.messages import MessagesRequest, MessagesResponse, Usage

__all__ = ["UNKNOWN_PROVIDER", "Telemetry", "model_redactor", "provider_name", "session_telemetry"]

_VERSION = "0.1.0"

UNKNOWN_PROVIDER = "unknown"
"""``gen_ai.provider.name`` of a model callable that does not name its provider."""


def provider_name(model: object) -> str:
    """The model callable's ``provider_name`` attribute, else ``unknown``."""
    name = getattr(model, "provider_name", None)
    return name if isinstance(name, str) and name else UNKNOWN_PROVIDER


def model_redactor(model: object) -> Redactor:
    """The redactor that knows ``model``'s API key, else the one for key-shaped strings."""
    for owner, name in ((getattr(model, "api", None), "redactor"), (model, "_redactor")):
        try:
            found = getattr(owner, name, None)
        except Exception:  # noqa: BLE001 - a foreign model's property may fail; fall back
            found = None
        if isinstance(found, Redactor):
            return found
    return DEFAULT_REDACTOR


class Telemetry:
    """Creates the library's spans on a user-supplied or the global provider."""

    __slots__ = (
        "_input_messages",
        "_known_active",
        "_redacts_for",
        "capture_content",
        "metrics",
        "redactor",
        "tracer",
    )

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        self.tracer = trace.get_tracer("conjure_async", _VERSION, tracer_provider=tracer_provider)
        self.metrics = Metrics(meter_provider)
        self.capture_content = capture_content
        self.redactor = DEFAULT_REDACTOR
        """Cleans captured content: the redactor of the model last called."""
        self._redacts_for: object = None
        self._input_messages = InputMessages()
        """The input messages' redacted JSON, message by message (with ``capture_content``)."""
        self._known_active = tracer_provider is not None

    @property
    def active(self) -> bool:
        """Whether spans or metrics go anywhere (a provider was given or set globally).

        With neither, span creation and measuring are skipped entirely: the
        loop's hot path then pays nothing for telemetry. The session asks once per turn. Once
        a global provider is set the answer is kept: OpenTelemetry sets the
        global provider once and never unsets it (asking costs an
        environment lookup through a raised ``KeyError``).
        """
        if self._known_active:
            return True
        if isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
            return self.metrics.active
        self._known_active = True
        return True

    @contextmanager
    def agent_span(self, conversation_id: str, model: str, provider: str) -> Iterator[Span]:
        """Span around one ``chat``."""
        if not self.active:
            yield INVALID_SPAN
            return
        with self.tracer.start_as_current_span(
            "invoke_agent conjure",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "conjure",
                "gen_ai.provider.name": provider,
                "gen_ai.conversation.id": conversation_id,
                "gen_ai.request.model": model,
            },
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.set_attribute("error.type", _error_type(exc))
                raise

    @contextmanager
    def chat_span(
        self,
        model: str,
        max_tokens: int,
        provider: str,
        *,
        request: MessagesRequest | None = None,
        model_callable: object = None,
    ) -> Iterator[Span]:
        """Span around one model call.

        With ``capture_content``, the ``request``'s system instructions, input
        messages and tool definitions are set on it (cleaned by the redactor
        of ``model_callable``).
        """
        if not self.active:
            yield INVALID_SPAN
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
        }
        if self.capture_content and request is not None:
            if model_callable is not self._redacts_for:
                self._redacts_for = model_callable
                self.redactor = model_redactor(model_callable)
            attributes.update(content_attributes(request, self.redactor, self._input_messages))
        with self.tracer.start_as_current_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.set_attribute("error.type", _error_type(exc))
                raise

    @contextmanager
    def tool_span(
        self,
        name: str,
        call_id: str,
        *,
        backend: str,
        tool_type: str = "function",
        skill: str | None = None,
        description: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Iterator[Span]:
        """Span around one tool call."""
        if not self.active:
            yield INVALID_SPAN
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": tool_type,
            "conjure.backend": backend,
        }
        if skill:
            attributes["conjure.skill"] = skill
        if description:
            attributes["gen_ai.tool.description"] = description
        if self.capture_content and arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = self.redactor.text(
                json.dumps(arguments, ensure_ascii=False, default=str)
            )
        with self.tracer.start_as_current_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.set_attribute("error.type", _error_type(exc))
                raise

    def record_response(self, span: Span, response: MessagesResponse) -> None:
        """Set a model call's response on its ``chat`` span (and its content, when captured)."""
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.response.id", response.id)
        span.set_attribute("gen_ai.response.model", response.model)
        self.record_usage(span, response.usage, [response.stop_reason or ""])
        if self.capture_content:
            span.set_attributes(output_attributes(response, self.redactor))

    @staticmethod
    def record_usage(span: Span, usage: Usage, finish_reasons: list[str]) -> None:
        """Set token usage (input counting cached tokens) and finish reasons on a span."""
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens(usage))
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        span.set_attribute(
            "gen_ai.usage.cache_read.input_tokens", usage.cache_read_input_tokens or 0
        )
        span.set_attribute(
            "gen_ai.usage.cache_creation.input_tokens", usage.cache_creation_input_tokens or 0
        )
        span.set_attribute("gen_ai.response.finish_reasons", finish_reasons)

    def record_tool_result(
        self,
        span: Span,
        *,
        name: str,
        output: str,
        is_error: bool,
        exit_code: int | None,
        duration_s: float,
        timed_out: bool,
        error_type: str | None = None,
    ) -> None:
        """Set a tool call's outcome on its span and record its duration.

        ``error.type`` (on a failed call) is ``error_type`` when known (the
        exception's type name, or ``timeout``), else ``tool_error``: the
        conventions' "class of error the operation ended with" for a tool
        that reported failure without raising (a non-zero exit, a refusal).
        """
        if is_error:
            error_type = error_type or "tool_error"
        if self.metrics.active:
            self.metrics.tool_call(
                duration_s,
                name=name,
                tool_type="function",
                error_type=error_type if is_error else None,
            )
        if not span.is_recording():
            return
        span.set_attribute("conjure.tool.duration_s", duration_s)
        span.set_attribute("conjure.tool.output_bytes", len(output.encode()))
        span.set_attribute("conjure.tool.timed_out", timed_out)
        if exit_code is not None:
            span.set_attribute("conjure.tool.exit_code", exit_code)
        if self.capture_content:
            span.set_attribute("gen_ai.tool.call.result", self.redactor.text(output))
        if is_error:
            span.set_attribute("error.type", error_type or "tool_error")  # never None here
            span.set_status(Status(StatusCode.ERROR, output[:200]))


def _error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: its type's qualified name."""
    return type(exc).__qualname__


_SHARED: list[Telemetry] = []


def session_telemetry(
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    capture_content: bool,
) -> Telemetry:
    """A session's telemetry; sessions on the global providers that capture no content share one.

    Such a telemetry object holds nothing of its session (it follows whatever
    provider OpenTelemetry has; once set, one stays set), so one per session
    was a few microseconds and a handful of objects each, for nothing. With
    ``capture_content`` it keeps the redactor of its session's model: never
    shared.
    """
    if tracer_provider is not None or meter_provider is not None or capture_content:
        return Telemetry(
            tracer_provider, meter_provider=meter_provider, capture_content=capture_content
        )
    if not _SHARED:
        _SHARED.append(Telemetry())
    return _SHARED[0]
