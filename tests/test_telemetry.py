"""Spans (in-memory exporter) and structured log events."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conjure_async import Session
from conjure_async._logging import get_logger
from conjure_async.backends import LocalBackend
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def bash(command: str) -> dict[str, Any]:
    return tool_call("bash_tool", {"command": command, "description": "t"}, id="call_1")


async def run(provider: TracerProvider, command: str, **options: Any) -> None:
    model = ScriptedModel([tool_use_response(bash(command)), text_response("done")])
    async with Session(
        LocalBackend(), model=model, tracer_provider=provider, session_id="sess-1", **options
    ) as session:
        await session.chat("go")


async def test_spans_follow_genai_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    await run(provider, "echo hi")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == [
        "chat scripted-model",
        "execute_tool bash_tool",
        "invoke_agent conjure",
    ]
    agent = spans["invoke_agent conjure"]
    assert agent.attributes is not None
    assert agent.attributes["gen_ai.conversation.id"] == "sess-1"
    assert agent.attributes["gen_ai.usage.input_tokens"] == 20
    assert agent.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    tool = spans["execute_tool bash_tool"]
    assert tool.attributes is not None
    assert {
        k: tool.attributes[k]
        for k in (
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "gen_ai.tool.call.id",
            "gen_ai.tool.type",
            "conjure.backend",
            "conjure.tool.exit_code",
            "conjure.tool.output_bytes",
        )
    } == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "bash_tool",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
        "conjure.backend": "local",
        "conjure.tool.exit_code": 0,
        "conjure.tool.output_bytes": 3,
    }
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    # tool and model spans are children of the chat's agent span
    assert tool.parent is not None
    assert tool.parent.span_id == agent.context.span_id
    chat = spans["chat scripted-model"]
    assert chat.parent is not None
    assert chat.parent.span_id == agent.context.span_id


async def test_failed_tool_span_carries_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    await run(provider, "exit 4")
    (tool,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert tool.attributes is not None
    assert tool.attributes["error.type"] == "tool_error"
    assert tool.attributes["conjure.tool.exit_code"] == 4
    assert not tool.status.is_ok


async def test_content_only_on_opt_in(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    await run(provider, "echo secret-output", capture_content=True)
    (tool,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert tool.attributes is not None
    assert "echo secret-output" in str(tool.attributes["gen_ai.tool.call.arguments"])
    assert tool.attributes["gen_ai.tool.call.result"] == "secret-output\n"


async def test_structlog_events_are_bound_to_session_and_call() -> None:
    with structlog.testing.capture_logs() as logs:
        model = ScriptedModel([tool_use_response(bash("true")), text_response("done")])
        async with Session(LocalBackend(), model=model, session_id="sess-2") as session:
            await session.chat("go")
    finished = [e for e in logs if e["event"] == "tool.finished"]
    assert finished == [
        {
            "event": "tool.finished",
            "log_level": "debug",
            "session_id": "sess-2",
            "call_id": "call_1",
            "tool": "bash_tool",
            "is_error": False,
            "exit_code": 0,
            "duration_s": finished[0]["duration_s"],
        }
    ]
    assert any(e["event"] == "chat.finished" for e in logs)


def test_unconfigured_library_is_quiet_below_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    log = get_logger(session_id="s")
    log.debug("noisy.debug")
    log.info("noisy.info")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_stdlib_logging_sees_events_when_enabled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    with caplog.at_level(logging.DEBUG, logger="conjure_async"):
        get_logger(session_id="s").debug("visible", n=1)
    assert caplog.messages == ["visible session_id='s' n=1"]
