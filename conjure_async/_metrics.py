"""OpenTelemetry metrics of model and tool calls (GenAI semantic conventions).

Only ``opentelemetry-api`` is used: with no SDK or no meter provider
configured nothing is recorded, and the session does not even measure (it
asks :attr:`Metrics.active` once per turn). Instruments are created on first
use.

=====================================  =========  ==============================
metric (histogram)                     unit       attributes
=====================================  =========  ==============================
``gen_ai.client.token.usage``          {token}    gen_ai.token.type (input,
                                                  output), gen_ai.operation.name,
                                                  gen_ai.provider.name,
                                                  gen_ai.request.model,
                                                  gen_ai.response.model
``gen_ai.client.operation.duration``   s          as above without token type;
                                                  error.type on failure
``gen_ai.execute_tool.duration``       s          gen_ai.operation.name,
                                                  gen_ai.tool.name,
                                                  gen_ai.tool.type,
                                                  error.type on failure
=====================================  =========  ==============================
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Histogram, MeterProvider, NoOpMeterProvider

from conjure_async.messages import MessagesResponse, Usage

__all__ = ["Metrics", "input_tokens"]

_VERSION = "0.1.0"

# The conventions' advisory bucket boundaries.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
_DURATION_BUCKETS += [40.96, 81.92]
_TOKEN_BUCKETS = [4**n for n in range(14)]  # 1, 4, 16 ... 67108864


def _records_nothing(provider: MeterProvider) -> bool:
    """Whether ``provider`` is one of the metrics API's own providers, which record nothing.

    Until a provider is set, the API hands out a placeholder (a proxy whose
    class is private); ``NoOpMeterProvider`` is the API's other one. Both are
    defined in the API package itself, never in an SDK: their module says so,
    without naming a private class.
    """
    module = type(provider).__module__
    return (
        isinstance(provider, NoOpMeterProvider)
        or module == _API_MODULE
        or module.startswith(_API_MODULE + ".")
    )


_API_MODULE = "opentelemetry.metrics"


def input_tokens(usage: Usage) -> int:
    """``gen_ai.usage.input_tokens``: every input token, cached ones included.

    The Anthropic API counts cache reads and cache writes apart from
    ``input_tokens``; the conventions' input count includes them.
    """
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


class Metrics:
    """Records the library's metrics on a user-supplied or the global meter provider."""

    __slots__ = ("_known_active", "_operation", "_provider", "_tokens", "_tool")

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        self._provider = meter_provider
        self._known_active = meter_provider is not None
        self._tokens: Histogram | None = None
        self._operation: Histogram | None = None
        self._tool: Histogram | None = None

    @property
    def active(self) -> bool:
        """Whether metrics go anywhere (a provider was given or set globally; kept once true)."""
        if self._known_active:
            return True
        if _records_nothing(metrics.get_meter_provider()):
            return False
        self._known_active = True
        return True

    def _instruments(self) -> tuple[Histogram, Histogram, Histogram]:
        if self._tokens is None or self._operation is None or self._tool is None:
            meter = metrics.get_meter("conjure_async", _VERSION, meter_provider=self._provider)
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            )
            self._operation = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self._tool = meter.create_histogram(
                "gen_ai.execute_tool.duration",
                unit="s",
                description="Duration of tool executions.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
        return self._tokens, self._operation, self._tool

    def model_call(
        self,
        duration_s: float,
        *,
        provider: str,
        request_model: str,
        response: MessagesResponse | None,
        error_type: str | None = None,
    ) -> None:
        """Record one model call: its duration and (when it answered) its tokens."""
        tokens, operation, _ = self._instruments()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
        }
        if response is not None and response.model:
            attributes["gen_ai.response.model"] = response.model
        if error_type is not None:
            attributes["error.type"] = error_type
        operation.record(duration_s, attributes)
        if response is not None:
            usage = response.usage
            tokens.record(input_tokens(usage), {**attributes, "gen_ai.token.type": "input"})
            tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})

    def tool_call(
        self, duration_s: float, *, name: str, tool_type: str, error_type: str | None
    ) -> None:
        """Record one tool call's duration (``error_type`` when it failed)."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": tool_type,
        }
        if error_type is not None:
            attributes["error.type"] = error_type
        self._instruments()[2].record(duration_s, attributes)
