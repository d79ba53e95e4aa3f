"""Spans, metrics and log events checked against the OpenTelemetry GenAI conventions."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conjure_async import Session
from conjure_async.backends import NativeBackend, tool
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


class TracedRun:
    """A provider with an in-memory exporter, and the spans it kept by name."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def span(self, prefix: str) -> ReadableSpan:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)][0]

    def attributes(self, prefix: str) -> dict[str, Any]:
        return dict(self.span(prefix).attributes or {})


@tool
async def divide(a: int, b: int) -> float:
    """Divide two numbers.

    Args:
        a: The dividend.
        b: The divisor.
    """
    return a / b


def divide_model(b: int, **options: Any) -> ScriptedModel:
    call = tool_call("divide", {"a": 1, "b": b}, id="call_1")
    return ScriptedModel([tool_use_response(call), text_response("done")], **options)


class HomeModel(ScriptedModel):
    """A model callable that names its provider."""

    provider_name = "example.home"


async def traced(model: ScriptedModel, **options: Any) -> TracedRun:
    run = TracedRun()
    async with Session(
        NativeBackend(divide), model=model, tracer_provider=run.provider, **options
    ) as session:
        await session.chat("go")
    return run


async def test_provider_name_comes_from_the_model() -> None:
    """Both agent and chat spans name the model's own provider, not a hard-coded one."""
    run = await traced(divide_model(2))
    assert run.attributes("invoke_agent")["gen_ai.provider.name"] == "scripted"
    assert run.attributes("chat ")["gen_ai.provider.name"] == "scripted"
    home = await traced(HomeModel([text_response("hi")]))
    assert home.attributes("invoke_agent")["gen_ai.provider.name"] == "example.home"
    assert home.attributes("chat ")["gen_ai.provider.name"] == "example.home"


async def test_model_without_provider_name_is_not_called_anthropic() -> None:
    """A plain async function as the model is reported as an unknown provider."""

    async def plain(request: Any) -> Any:
        return text_response("hi")

    run = TracedRun()
    async with Session(NativeBackend(divide), model=plain, tracer_provider=run.provider) as s:
        await s.chat("go")
    assert run.attributes("chat ")["gen_ai.provider.name"] == "unknown"
    assert run.attributes("invoke_agent")["gen_ai.provider.name"] == "unknown"


def test_anthropic_models_say_anthropic() -> None:
    """The two Anthropic model classes name the provider the conventions list."""
    from conjure_async.models import AnthropicModel, AnthropicSDKModel

    assert AnthropicModel.provider_name == "anthropic"
    assert AnthropicSDKModel.provider_name == "anthropic"


async def test_tool_span_has_the_tool_description() -> None:
    """An execute_tool span carries the tool's description as offered to the model."""
    run = await traced(divide_model(2))
    assert run.attributes("execute_tool")["gen_ai.tool.description"].startswith(
        "Divide two numbers."
    )


async def test_failing_tool_records_the_exception_type() -> None:
    """A tool that raises records error.type as the exception's type name."""
    run = await traced(divide_model(0))
    span = run.span("execute_tool")
    assert (span.attributes or {})["error.type"] == "ZeroDivisionError"
    assert not span.status.is_ok


class MeteredRun:
    """A meter provider with an in-memory reader; points of one metric by attributes."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }


async def metered(model: ScriptedModel) -> MeteredRun:
    run = MeteredRun()
    async with Session(NativeBackend(divide), model=model, meter_provider=run.provider) as s:
        await s.chat("go")
    return run


async def test_token_usage_histogram_per_token_type() -> None:
    """gen_ai.client.token.usage records input and output tokens of each model call."""
    metrics = (await metered(divide_model(2))).metrics()
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    sums = {p.attributes["gen_ai.token.type"]: (p.count, p.sum) for p in usage.data.data_points}
    assert sums == {"input": (2, 20), "output": (2, 10)}
    (point, *_) = usage.data.data_points
    assert point.attributes["gen_ai.operation.name"] == "chat"
    assert point.attributes["gen_ai.provider.name"] == "scripted"
    assert point.attributes["gen_ai.request.model"] == "scripted-model"


async def test_operation_and_tool_duration_histograms() -> None:
    """Each model call and each tool call is one duration point, in seconds, failures typed."""
    metrics = (await metered(divide_model(0))).metrics()
    operation = metrics["gen_ai.client.operation.duration"]
    assert operation.unit == "s"
    (point,) = operation.data.data_points
    assert point.count == 2
    assert point.attributes["gen_ai.operation.name"] == "chat"
    tool_duration = metrics["gen_ai.execute_tool.duration"]
    assert tool_duration.unit == "s"
    (point,) = tool_duration.data.data_points
    assert point.count == 1
    assert point.attributes["gen_ai.tool.name"] == "divide"
    assert point.attributes["error.type"] == "ZeroDivisionError"


async def test_failed_model_call_duration_has_error_type() -> None:
    """A model call that raises still records its duration, with error.type."""

    async def broken(request: Any) -> Any:
        raise ConnectionError("down")

    run = MeteredRun()
    async with Session(NativeBackend(divide), model=broken, meter_provider=run.provider) as s:
        with pytest.raises(ConnectionError):
            await s.chat("go")
    (point,) = run.metrics()["gen_ai.client.operation.duration"].data.data_points
    assert point.attributes["error.type"] == "ConnectionError"
    assert point.attributes["gen_ai.provider.name"] == "unknown"


async def test_without_providers_nothing_is_measured() -> None:
    """With no tracer or meter provider, no instrument is ever created."""
    async with Session(NativeBackend(divide), model=divide_model(0)) as session:
        await session.chat("go")
        assert not session._telemetry.active
        assert session._telemetry.metrics._tool is None


async def test_log_events_carry_trace_and_span_ids() -> None:
    """A log event emitted inside a span carries that span's trace_id and span_id (hex)."""
    import structlog

    run = TracedRun()
    with structlog.testing.capture_logs() as logs:
        async with Session(
            NativeBackend(divide), model=divide_model(0), tracer_provider=run.provider
        ) as session:
            await session.chat("go")
    tool = run.span("execute_tool")
    (failed,) = [e for e in logs if e["event"] == "native.tool_failed"]
    assert failed["trace_id"] == format(tool.context.trace_id, "032x")
    assert failed["span_id"] == format(tool.context.span_id, "016x")
    (opened,) = [e for e in logs if e["event"] == "session.opened"]
    assert "trace_id" not in opened  # no span is active when the session opens


def test_every_emitted_log_event_is_documented() -> None:
    """Every log event name the package emits has a row in docs/telemetry.md's table."""
    import re
    from pathlib import Path

    import conjure_async

    package = Path(conjure_async.__file__).parent
    call = re.compile(r"\.(?:debug|info|warning|error)\(\s*\"([a-z_]+\.[a-z_.]+)\"")
    emitted = {m for p in package.rglob("*.py") for m in call.findall(p.read_text())}
    assert len(emitted) >= 20  # the scan finds the events (not vacuous)
    docs = (package.parent / "docs" / "telemetry.md").read_text()
    logs = docs.split("## Logs", 1)[1]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_.]+)`", logs))
    assert sorted(emitted - documented) == []
