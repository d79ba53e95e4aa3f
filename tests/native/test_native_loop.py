"""Native calls go through the session loop: hooks, limits, events, spans."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conjure_async import BackendError, Deny, Rewrite, Session, ToolCall, ToolResult
from conjure_async.backends import NativeBackend, ToolContext, tool
from conjure_async.testing import (
    ScriptedModel,
    assert_events,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)

pytestmark = pytest.mark.anyio

calls: list[str] = []


@tool
async def echo(text: str) -> str:
    """Echo the text back."""
    calls.append(text)
    return text


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def one_call(text: str = "hi") -> ScriptedModel:
    return ScriptedModel(
        [tool_use_response(tool_call("echo", {"text": text}, id="call_1")), text_response("done")]
    )


async def test_native_call_emits_the_usual_events() -> None:
    async with Session(NativeBackend(echo), model=one_call()) as session:
        events = await collect(session.stream("go"))
    assert_events(
        events,
        [
            {"kind": "tool_started", "name": "echo", "backend": "native", "input": {"text": "hi"}},
            {"kind": "tool_finished", "name": "echo", "backend": "native", "output": "hi"},
            "turn_finished end_turn",
        ],
    )


async def test_native_call_runs_in_an_execute_tool_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with Session(NativeBackend(echo), model=one_call(), tracer_provider=provider) as session:
        await session.chat("go")
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool echo"]
    assert span.attributes is not None
    assert span.attributes["conjure.backend"] == "native"
    assert span.attributes["gen_ai.tool.call.id"] == "call_1"


async def test_before_hook_can_deny_a_native_call() -> None:
    async def deny(call: ToolCall, ctx: ToolContext[Any]) -> Deny:
        return Deny("not allowed")

    async with Session(NativeBackend(echo), model=one_call(), before_tool_call=deny) as session:
        reply = await session.chat("go")
    assert calls == []
    assert (reply.tool_calls[0].output, reply.tool_calls[0].is_error) == ("not allowed", True)


async def test_before_hook_can_rewrite_native_arguments() -> None:
    async def rewrite(call: ToolCall, ctx: ToolContext[Any]) -> Rewrite:
        return Rewrite({"text": call.input["text"].upper()})

    async with Session(NativeBackend(echo), model=one_call(), before_tool_call=rewrite) as session:
        await session.chat("go")
    assert calls == ["HI"]


async def test_after_hook_can_replace_a_native_result() -> None:
    async def redact(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult(output="[redacted]")

    async with Session(NativeBackend(echo), model=one_call(), after_tool_call=redact) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[0].output == "[redacted]"


async def test_concurrency_limit_applies_to_native_calls() -> None:
    running = 0
    peak = 0

    @tool
    async def work(n: int) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        running -= 1
        return str(n)

    model = ScriptedModel(
        [
            tool_use_response(*(tool_call("work", {"n": n}) for n in range(4))),
            text_response("done"),
        ]
    )
    async with Session(NativeBackend(work), model=model, max_concurrent_tools=2) as session:
        reply = await session.chat("go")
    assert [r.output for r in reply.tool_calls] == ["0", "1", "2", "3"]
    assert peak == 2


async def test_native_calls_of_one_response_run_concurrently() -> None:
    arrived = 0
    both_here = anyio.Event()

    @tool
    async def meet() -> str:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_here.set()
        with anyio.fail_after(5):
            await both_here.wait()
        return "met"

    model = ScriptedModel(
        [tool_use_response(tool_call("meet", {}), tool_call("meet", {})), text_response("done")]
    )
    async with Session(NativeBackend(meet), model=model) as session:
        reply = await session.chat("go")
    assert [(r.output, r.is_error) for r in reply.tool_calls] == [("met", False), ("met", False)]


async def test_arguments_failing_the_schema_never_reach_the_function() -> None:
    model = ScriptedModel(
        [tool_use_response(tool_call("echo", {"text": 3})), text_response("done")]
    )
    async with Session(NativeBackend(echo), model=model) as session:
        reply = await session.chat("go")
    assert calls == []
    assert reply.tool_calls[0].is_error
    assert reply.tool_calls[0].output.startswith("Invalid arguments for echo")


async def test_tool_results_reach_the_model_in_the_next_request() -> None:
    model = one_call("ping")
    async with Session(NativeBackend(echo), model=model) as session:
        await session.chat("go")
    last = model.requests[-1].messages[-1].content
    assert isinstance(last, list)
    assert last[0].model_dump(exclude_none=True) == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "ping",
    }


async def test_one_backend_cannot_serve_two_open_sessions() -> None:
    backend = NativeBackend(echo)
    async with Session(backend, model=one_call()):
        with pytest.raises(BackendError, match="already in use"):
            async with Session(backend, model=one_call()):
                pass
