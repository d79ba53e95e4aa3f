"""The session drives the engine cheaply: no unread events, one timer, one provider lookup."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anyio
import pytest
from opentelemetry import trace

from conjure_async import Session
from conjure_async import messages as messages_module
from conjure_async.events import ModelResponded, TextDelta, ToolFinished, ToolStarted, TurnFinished
from conjure_async.testing import (
    ScriptedModel,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


async def echo(args: dict[str, Any]) -> str:
    return "ok"


def script(calls: int) -> list[Any]:
    return [tool_use_response(tool_call("echo"), text="calling") for _ in range(calls)] + [
        text_response("done")
    ]


EVENTS = {"ModelResponded", "TextDelta", "ToolFinished", "ToolStarted", "TurnFinished"}


async def test_chat_builds_no_event_nobody_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """chat() constructs no stream events; stream() of the same turn does (the counter works)."""
    built: list[str] = []
    original = messages_module._fast_construct

    def counting(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        built.append(cls.__name__)
        return original(cls, *args, **kwargs)

    # every module holding the unvalidated constructor, under any name
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("conjure_async"):
            for name, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, name, counting)
    for cls in (TurnFinished, ModelResponded, TextDelta, ToolStarted, ToolFinished):
        monkeypatch.setattr(cls, "__init__", _counting_init(cls.__init__, built))
    async with Session(FuncBackend({"echo": echo}), model=ScriptedModel(script(3))) as session:
        reply = await session.chat("go")
        assert reply.text == "done"
        assert len(reply.tool_calls) == 3
        assert EVENTS.isdisjoint(built), built
        session.reset()
        session.model = ScriptedModel(script(1))
        await collect(session.stream("go"))
    assert set(built) >= EVENTS


def _counting_init(init: Any, built: list[str]) -> Any:
    def counting(self: Any, **values: Any) -> None:
        built.append(type(self).__name__)
        init(self, **values)

    return counting


async def test_tool_calls_share_one_timer_per_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """30 tool calls arm at most a couple of event-loop timers, not one per call."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    original = loop.call_at

    def counting(when: float, *args: Any, **kwargs: Any) -> Any:
        armed.append(when)
        return original(when, *args, **kwargs)

    model = ScriptedModel(script(30))
    async with Session(FuncBackend({"echo": echo}), model=model, max_iterations=31) as session:
        monkeypatch.setattr(loop, "call_at", counting)
        reply = await session.chat("go")
        monkeypatch.undo()
    assert len(reply.tool_calls) == 30
    assert len(armed) <= 2, armed


async def test_a_lowered_tool_timeout_applies_to_the_next_call_at_once() -> None:
    """The shared timer re-plans when a call's deadline is earlier than the one it sleeps on."""

    async def hang(args: dict[str, Any]) -> str:
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel(
        [
            tool_use_response(tool_call("echo")),
            text_response("first"),
            tool_use_response(tool_call("hang")),
            text_response("second"),
        ]
    )
    backend = FuncBackend({"echo": echo, "hang": hang})
    async with Session(backend, model=model, tool_timeout=600) as session:
        await session.chat("quick")  # the timer now sleeps toward a deadline 600 s away
        session.tool_timeout = 0.05
        with anyio.fail_after(30):
            reply = await session.chat("slow")
    (record,) = reply.tool_calls
    assert record.is_error
    assert "timed out after 0.05s" in record.output


async def test_calls_of_one_batch_time_out_on_their_own() -> None:
    """In one batch, the hanging call times out and the quick one keeps its result."""

    async def hang(args: dict[str, Any]) -> str:
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel(
        [tool_use_response(tool_call("hang"), tool_call("echo")), text_response("k")]
    )
    async with Session(
        FuncBackend({"echo": echo, "hang": hang}), model=model, tool_timeout=0.1
    ) as session:
        reply = await session.chat("go")
    outcomes = {r.name: (r.is_error, "timed out" in r.output) for r in reply.tool_calls}
    assert outcomes == {"hang": (True, True), "echo": (False, False)}


async def test_the_tracer_provider_is_looked_up_once_per_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a provider, a 20-call chat asks OpenTelemetry once, not twice per iteration."""
    asked: list[int] = []
    original = trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return original()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    async with Session(FuncBackend({"echo": echo}), model=ScriptedModel(script(20))) as session:
        asked.clear()
        await session.chat("go")
    assert len(asked) <= 1


async def test_a_tool_gets_a_complete_context() -> None:
    """The context built for each call is a real ToolContext with every field and a bound logger."""
    from conjure_async.backends import ToolContext

    seen: list[Any] = []

    async def probe(args: dict[str, Any], ctx: Any = None) -> str:
        return "ok"

    class Recording(FuncBackend):
        async def run_tool(self, call: Any, ctx: Any) -> Any:
            seen.append(ctx)
            async for event in super().run_tool(call, ctx):
                yield event

    model = ScriptedModel([tool_use_response(tool_call("probe", id="c7")), text_response("k")])
    deps = object()
    async with Session(Recording({"probe": probe}), model=model, deps=deps) as session:
        await session.chat("go")
    (ctx,) = seen
    assert type(ctx) is ToolContext
    assert (ctx.session_id, ctx.call_id, ctx.tool_name, ctx.deps) == (
        session.session_id,
        "c7",
        "probe",
        deps,
    )
    assert ctx == ToolContext(session.session_id, "c7", "probe", ctx.logger, deps)
    assert ctx.logger._context == {
        "session_id": session.session_id,
        "call_id": "c7",
        "tool": "probe",
    }
    with pytest.raises(AttributeError):
        ctx.call_id = "changed"  # still frozen
