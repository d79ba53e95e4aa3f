"""The session and its conversation loop, driven by the scripted model."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from conjure_async import (
    Deny,
    MaxIterationsError,
    ModelResponseError,
    Rewrite,
    Session,
    SessionStateError,
    ToolCall,
    ToolConflictError,
    ToolResult,
)
from conjure_async.events import Reply, TextDelta, event_adapter
from conjure_async.messages import MessagesRequest, ToolResultBlock, ToolUseBlock
from conjure_async.testing import (
    ScriptedModel,
    assert_events,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.helpers import FuncBackend, compact_events

pytestmark = pytest.mark.anyio


async def echo(args: dict[str, Any]) -> str:
    return f"echo {args.get('text', '')}"


def assert_history_consistent(session: Session[Any]) -> None:
    """Every assistant tool_use is answered, in the next user message, in order."""
    history = session.history
    for index, message in enumerate(history):
        if message.role != "assistant" or isinstance(message.content, str):
            continue
        uses = [b.id for b in message.content if isinstance(b, ToolUseBlock)]
        if not uses:
            continue
        nxt = history[index + 1]
        assert nxt.role == "user"
        assert not isinstance(nxt.content, str)
        results = [b.tool_use_id for b in nxt.content if isinstance(b, ToolResultBlock)]
        assert results == uses


async def test_multi_step_tool_loop_ends_with_final_text() -> None:
    model = ScriptedModel(
        [
            tool_use_response(tool_call("echo", {"text": "one"})),
            tool_use_response(tool_call("echo", {"text": "two"})),
            text_response("all done"),
        ]
    )
    backend = FuncBackend({"echo": echo})
    async with Session(backend, model=model) as session:
        events = await collect(session.stream("start"))
    assert_events(
        events,
        [
            "tool_started echo",
            "tool_finished echo ok",
            "tool_started echo",
            "tool_finished echo ok",
            "turn_finished end_turn",
        ],
    )
    reply = events[-1].reply  # type: ignore[union-attr]
    assert reply.text == "all done"
    assert [c.output for c in reply.tool_calls] == ["echo one", "echo two"]
    assert reply.iterations == 3
    assert reply.usage.input_tokens == 30
    # the model saw each tool result in the following request
    last = model.requests[-1].messages
    assert [m.role for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[-1].content[0].content == "echo two"  # type: ignore[union-attr]


async def test_chat_returns_the_reply_of_the_drained_stream() -> None:
    model = ScriptedModel([text_response("hello there")])
    async with Session(model=model) as session:
        reply = await session.chat("hi")
    assert isinstance(reply, Reply)
    assert reply.text == "hello there"
    assert reply.stop_reason == "end_turn"


async def test_request_carries_system_tools_and_history() -> None:
    model = ScriptedModel([text_response("a"), text_response("b")])
    backend = FuncBackend({"echo": echo})
    async with Session(backend, model=model, system="Be brief.", max_tokens=123) as session:
        await session.chat("first")
        await session.chat("second")
    request = model.requests[1]
    assert request.max_tokens == 123
    assert request.model == "scripted-model"
    assert isinstance(request.system, str)
    assert request.system.startswith("Be brief.")
    assert [t["name"] for t in request.tools or []] == ["echo"]
    assert [(m.role, m.content) for m in request.messages][0] == ("user", "first")
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]


async def test_parallel_tool_calls_finish_out_of_order_results_in_order() -> None:
    first_may_finish = anyio.Event()
    finished: list[str] = []

    async def slow(args: dict[str, Any]) -> str:
        await first_may_finish.wait()
        finished.append("slow")
        return "slow result"

    async def fast(args: dict[str, Any]) -> str:
        finished.append("fast")
        first_may_finish.set()
        return "fast result"

    model = ScriptedModel(
        [
            tool_use_response(tool_call("slow", id="call_a"), tool_call("fast", id="call_b")),
            text_response("ok"),
        ]
    )
    async with Session(FuncBackend({"slow": slow, "fast": fast}), model=model) as session:
        await session.chat("go")
        history = session.history
    assert finished == ["fast", "slow"]
    results = history[2].content
    assert isinstance(results, list)
    assert [(b.tool_use_id, b.content) for b in results] == [  # type: ignore[union-attr]
        ("call_a", "slow result"),
        ("call_b", "fast result"),
    ]


async def test_concurrency_is_bounded_by_max_concurrent_tools() -> None:
    running = 0
    peak = 0

    async def work(args: dict[str, Any]) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return "done"

    calls = [tool_call("work") for _ in range(6)]
    model = ScriptedModel([tool_use_response(*calls), text_response("ok")])
    async with Session(FuncBackend({"work": work}), model=model, max_concurrent_tools=2) as s:
        await s.chat("go")
    assert peak == 2


async def test_tool_timeout_returns_partial_output_as_error() -> None:
    async def hang(args: dict[str, Any]) -> str:
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel([tool_use_response(tool_call("hang")), text_response("ok")])
    async with Session(FuncBackend({"hang": hang}), model=model, tool_timeout=0.05) as session:
        reply = await session.chat("go")
    (record,) = reply.tool_calls
    assert record.is_error
    assert record.output.startswith("running hang\n")
    assert "timed out after 0.05s" in record.output
    result = model.requests[1].messages[-1].content[0]  # type: ignore[index]
    assert result.is_error is True  # type: ignore[union-attr]


async def test_failing_tool_is_an_error_result_not_an_exception() -> None:
    async def broken(args: dict[str, Any]) -> str:
        raise ValueError("disk on fire")

    model = ScriptedModel([tool_use_response(tool_call("broken")), text_response("sorry")])
    async with Session(FuncBackend({"broken": broken}), model=model) as session:
        events = await collect(session.stream("go"))
    assert_events(events, ["tool_started", "tool_finished broken error", "turn_finished end_turn"])


async def test_unknown_tool_gets_a_clear_error_result() -> None:
    model = ScriptedModel([tool_use_response(tool_call("nope")), text_response("ok")])
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[0].is_error
    assert reply.tool_calls[0].output == "Unknown tool 'nope'. Available tools: echo."


async def test_invalid_tool_input_is_rejected_before_the_backend_runs() -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    backend = FuncBackend({"echo": echo}, schemas={"echo": schema})
    model = ScriptedModel([tool_use_response(tool_call("echo", {"txt": 5})), text_response("ok")])
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
    assert backend.calls == []
    output = reply.tool_calls[0].output
    assert output.startswith("Invalid arguments for echo:")
    assert "missing required field 'text'" in output
    assert "unexpected field 'txt'" in output


@pytest.mark.parametrize("stop_reason", ["end_turn", "stop_sequence", "max_tokens", "refusal"])
async def test_terminal_stop_reasons_end_the_turn_visibly(stop_reason: str) -> None:
    model = ScriptedModel([text_response("partial", stop_reason=stop_reason)])
    async with Session(model=model) as session:
        reply = await session.chat("go")
    assert reply.stop_reason == stop_reason
    assert reply.text == "partial"
    assert len(model.requests) == 1


async def test_pause_turn_resends_assistant_content_as_is_without_user_message() -> None:
    paused = text_response("working on it", stop_reason="pause_turn")
    model = ScriptedModel([paused, text_response(" finished")])
    async with Session(model=model) as session:
        events = await collect(session.stream("long job"))
        history = session.history
    assert_events(events, ["paused 1", "turn_finished end_turn"])
    second = model.requests[1].messages
    assert [m.role for m in second] == ["user", "assistant"]
    assert second[-1].content == paused.content
    # the continuation is merged into one assistant turn
    assert [m.role for m in history] == ["user", "assistant"]
    assert events[-1].reply.text == "working on it finished"  # type: ignore[union-attr]


async def test_pause_turn_continuations_are_bounded() -> None:
    model = ScriptedModel(lambda request: text_response("...", stop_reason="pause_turn"))
    async with Session(model=model, max_pause_continuations=3) as session:
        reply = await session.chat("go")
    assert reply.stop_reason == "pause_turn"
    assert len(model.requests) == 4


async def test_max_iterations_raises_after_an_error_event() -> None:
    model = ScriptedModel(lambda request: tool_use_response(tool_call("echo")))
    events = []
    async with Session(FuncBackend({"echo": echo}), model=model, max_iterations=3) as session:
        with pytest.raises(MaxIterationsError, match="max_iterations=3"):
            async for event in session.stream("loop forever"):
                events.append(event)
        assert_history_consistent(session)
    assert events[-1].kind == "error"
    assert events[-1].error_type == "MaxIterationsError"  # type: ignore[union-attr]
    assert len(model.requests) == 3


async def test_garbage_from_the_model_raises_model_response_error() -> None:
    model = ScriptedModel([{"content": "not a list", "stop_reason": 7}])
    async with Session(model=model) as session:
        with pytest.raises(ModelResponseError):
            await session.chat("go")
        # the session survives and the next chat works
        model._steps = [text_response("fine")]  # type: ignore[list-item]
        model._used = 0
        assert (await session.chat("again")).text == "fine"


async def test_plain_async_function_works_as_the_model() -> None:
    seen: list[MessagesRequest] = []

    async def my_model(request: MessagesRequest) -> dict[str, Any]:
        seen.append(request)
        return {"content": [{"type": "text", "text": "from a function"}], "stop_reason": "end_turn"}

    async with Session(model=my_model) as session:
        events = await collect(session.stream("hi"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["from a function"]
    assert seen[0].messages[0].content == "hi"


async def test_hook_can_approve_deny_and_rewrite() -> None:
    async def before(call: ToolCall, ctx: Any) -> Deny | Rewrite | None:
        if call.input.get("text") == "secret":
            return Deny("not allowed to echo secrets")
        if call.input.get("text") == "rewrite me":
            return Rewrite({"text": "rewritten"})
        return None

    after_seen: list[str] = []

    async def after(call: ToolCall, result: ToolResult) -> ToolResult | None:
        after_seen.append(result.text)
        return None

    backend = FuncBackend({"echo": echo})
    model = ScriptedModel(
        [
            tool_use_response(
                tool_call("echo", {"text": "plain"}),
                tool_call("echo", {"text": "secret"}),
                tool_call("echo", {"text": "rewrite me"}),
            ),
            text_response("ok"),
        ]
    )
    async with Session(
        backend, model=model, before_tool_call=before, after_tool_call=after
    ) as session:
        reply = await session.chat("go")
    outputs = [(c.output, c.is_error) for c in reply.tool_calls]
    assert sorted(outputs) == sorted(
        [("echo plain", False), ("not allowed to echo secrets", True), ("echo rewritten", False)]
    )
    assert sorted(c.input["text"] for c in backend.calls) == ["plain", "rewritten"]
    assert sorted(after_seen) == sorted(
        ["echo plain", "not allowed to echo secrets", "echo rewritten"]
    )


async def test_after_hook_can_replace_the_result() -> None:
    async def after(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult(output=result.text.upper())

    model = ScriptedModel([tool_use_response(tool_call("echo", {"text": "x"})), text_response("k")])
    async with Session(FuncBackend({"echo": echo}), model=model, after_tool_call=after) as s:
        reply = await s.chat("go")
    assert reply.tool_calls[0].output == "ECHO X"


async def test_cancelling_a_chat_mid_tool_keeps_history_consistent() -> None:
    started = anyio.Event()

    async def hang(args: dict[str, Any]) -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel(
        [tool_use_response(tool_call("hang"), tool_call("echo")), text_response("after")]
    )
    async with Session(FuncBackend({"hang": hang, "echo": echo}), model=model) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "go")
            await started.wait()
            tg.cancel_scope.cancel()
        assert_history_consistent(session)
        results = session.history[-1].content
        assert isinstance(results, list)
        hang_result = results[0]
        assert hang_result.is_error is True  # type: ignore[union-attr]
        assert "cancelled" in str(hang_result.content)  # type: ignore[union-attr]
        reply = await session.chat("next")
    assert reply.text == "after"
    assert [m.role for m in model.requests[-1].messages] == ["user", "assistant", "user"]


async def test_breaking_out_of_a_stream_cancels_the_turn() -> None:
    model = ScriptedModel([tool_use_response(tool_call("echo")), text_response("a")], text_chunk=1)
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        stream = session.stream("go")
        async for event in stream:
            if event.kind == "tool_started":
                break
        await stream.aclose()  # type: ignore[attr-defined]
        assert_history_consistent(session)
        model._steps = [text_response("next")]  # type: ignore[list-item]
        model._used = 0
        assert (await session.chat("again")).text == "next"


async def test_chats_on_one_session_run_one_at_a_time() -> None:
    model = ScriptedModel([text_response("one"), text_response("two")], delay=0.01)
    async with Session(model=model) as session:
        replies: list[str] = []

        async def run(text: str) -> None:
            replies.append((await session.chat(text)).text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a")
            tg.start_soon(run, "b")
    assert sorted(replies) == ["one", "two"]
    assert [m.role for m in model.requests[1].messages] == ["user", "assistant", "user"]


async def test_reset_clears_history() -> None:
    model = ScriptedModel([text_response("a"), text_response("b")])
    async with Session(model=model) as session:
        await session.chat("first")
        session.reset()
        await session.chat("second")
    assert [m.content for m in model.requests[1].messages] == ["second"]


async def test_state_round_trips_through_json() -> None:
    model = ScriptedModel([tool_use_response(tool_call("echo", {"text": "x"})), text_response("a")])
    async with Session(FuncBackend({"echo": echo}), model=model, session_id="s1") as session:
        await session.chat("first")
        state = json.dumps(session.dump_state())

    model2 = ScriptedModel([text_response("b")])
    restored = Session.restore(state, backend=FuncBackend({"echo": echo}), model=model2)
    async with restored:
        await restored.chat("second")
        assert restored.session_id == "s1"
        assert restored.usage.input_tokens == 30
    sent = model2.requests[0].messages
    assert [m.role for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[0].content == "first"


async def test_restore_rejects_other_backend_kinds_and_bad_state() -> None:
    class OtherBackend(FuncBackend):
        kind = "other"

    model = ScriptedModel([])
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        state = session.dump_state()
    with pytest.raises(SessionStateError, match="saved with backends"):
        Session.restore(state, backend=OtherBackend({"echo": echo}), model=model)
    with pytest.raises(SessionStateError, match="invalid session state"):
        Session.restore({"version": 1}, model=model)
    with pytest.raises(SessionStateError, match="unsupported state version"):
        Session.restore({"version": 99, "messages": []}, model=model)


async def test_tool_name_clash_across_backends_names_both() -> None:
    class Other(FuncBackend):
        kind = "other"

    with pytest.raises(ToolConflictError, match=r"'echo'.*FuncBackend \(func\).*Other \(other\)"):
        Session([FuncBackend({"echo": echo}), Other({"echo": echo})], model=ScriptedModel([]))


async def test_using_a_session_outside_its_context_is_an_error() -> None:
    session = Session(model=ScriptedModel([text_response("x")]))
    with pytest.raises(SessionStateError, match="is new"):
        await session.chat("hi")
    async with session:
        pass
    with pytest.raises(SessionStateError, match="closed"):
        await session.chat("hi")
    with pytest.raises(SessionStateError, match="opened once"):
        await session.__aenter__()


async def test_backends_are_opened_and_closed_even_on_error() -> None:
    backend = FuncBackend({"echo": echo})
    with pytest.raises(RuntimeError, match="boom"):
        async with Session(backend, model=ScriptedModel([])):
            raise RuntimeError("boom")
    assert (backend.opened, backend.closed) == (1, 1)


async def test_deps_and_ids_reach_the_tool_context() -> None:
    backend = FuncBackend({"echo": echo})
    model = ScriptedModel([tool_use_response(tool_call("echo", id="call_1")), text_response("k")])
    deps = {"db": object()}
    async with Session(backend, model=model, deps=deps, session_id="sess") as session:
        await session.chat("go")
    (ctx,) = backend.contexts
    assert (ctx.session_id, ctx.call_id, ctx.tool_name, ctx.deps) == (
        "sess",
        "call_1",
        "echo",
        deps,
    )


async def test_events_round_trip_through_json() -> None:
    model = ScriptedModel([tool_use_response(tool_call("echo")), text_response("k")])
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        events = await collect(session.stream("go"))
    assert [event_adapter.validate_json(e.model_dump_json()) for e in events] == events


async def test_server_side_tool_events_are_recorded_with_their_input() -> None:
    from conjure_async.backends import Backend
    from conjure_async.events import ToolFinished, ToolStarted

    class ServerSide(Backend):
        kind = "server"

        def handle_response(self, response: Any) -> list[Any]:
            return [
                ToolStarted(
                    call_id="srv_1", name="bash", input={"command": "ls"}, backend="server"
                ),
                ToolFinished(call_id="srv_1", name="bash", backend="server", output="a\n"),
            ]

    model = ScriptedModel([text_response("done")])
    async with Session(ServerSide(), model=model) as session:
        events = await collect(session.stream("go"))
    assert_events(events, ["tool_started bash", "tool_finished bash ok", "turn_finished end_turn"])
    (record,) = events[-1].reply.tool_calls  # type: ignore[union-attr]
    assert (record.call_id, record.input, record.output) == ("srv_1", {"command": "ls"}, "a\n")


async def test_a_tool_raising_timeout_error_is_not_reported_as_our_timeout() -> None:
    from conjure_async.backends import NativeBackend, tool

    @tool
    async def fetch() -> str:
        """Fetch something slow."""
        raise TimeoutError("upstream took too long")

    model = ScriptedModel([tool_use_response(tool_call("fetch")), text_response("k")])
    async with Session(NativeBackend(fetch), model=model, tool_timeout=30) as session:
        reply = await session.chat("go")
    (record,) = reply.tool_calls
    assert record.is_error
    assert record.output == "TimeoutError: upstream took too long"


async def test_next_chat_after_an_exhausted_pause_drops_the_unanswered_server_call() -> None:
    paused = {
        "content": [
            {"type": "text", "text": "Working."},
            {
                "type": "server_tool_use",
                "id": "srv_1",
                "name": "bash_code_execution",
                "input": {"command": "sleep 600"},
            },
        ],
        "stop_reason": "pause_turn",
    }
    model = ScriptedModel([paused, text_response("fresh answer")])
    async with Session(model=model, max_pause_continuations=0) as session:
        first = await session.chat("long job")
        second = await session.chat("something else")
    assert first.stop_reason == "pause_turn"
    assert second.text == "fresh answer"
    sent = model.requests[1].messages
    assert [m.role for m in sent] == ["user", "assistant", "user"]
    assert [b.type for b in sent[1].content] == ["text"]  # type: ignore[union-attr]


SERVER_SIDE_RESPONSE = {
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "server_tool_use", "id": "srv_1", "name": "bash", "input": {}},
        {"type": "text", "text": "Done."},
    ],
    "stop_reason": "end_turn",
}


class BlockEvents(FuncBackend):
    """Turns each server_tool_use block into a started/finished pair."""

    kind = "blocks"

    def handle_block(self, block: Any) -> list[Any]:
        from conjure_async.events import ToolFinished, ToolStarted

        if block.type != "server_tool_use":
            return []
        return [
            ToolStarted(call_id=block.id, name=block.name, input={}, backend="blocks"),
            ToolFinished(call_id=block.id, name=block.name, backend="blocks", output="ok"),
        ]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "plain-callback"])
async def test_server_side_block_events_stream_in_their_place(streaming: bool) -> None:
    scripted = ScriptedModel([SERVER_SIDE_RESPONSE], text_chunk=3)

    async def plain(request: MessagesRequest) -> Any:
        return await scripted(request)

    model: Any = scripted if streaming else plain
    async with Session(BlockEvents({}), model=model) as session:
        events = await collect(session.stream("go"))
    assert compact_events(events) == [
        "text:Checking.",
        "tool_started",
        "tool_finished",
        "text:Done.",
        "model_responded",
        "turn_finished",
    ]


async def test_a_rewrite_that_breaks_the_schema_is_refused() -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    backend = FuncBackend({"echo": echo}, schemas={"echo": schema})

    async def before(call: ToolCall, ctx: Any) -> Rewrite:
        return Rewrite({"text": 42})

    model = ScriptedModel([tool_use_response(tool_call("echo", {"text": "x"})), text_response("k")])
    async with Session(backend, model=model, before_tool_call=before) as session:
        reply = await session.chat("go")
    assert backend.calls == []
    assert reply.tool_calls[0].is_error
    assert "after the before_tool_call hook rewrote them" in reply.tool_calls[0].output
    assert "input.text must be of type string" in reply.tool_calls[0].output


async def test_a_continuation_repeating_a_server_call_id_stores_it_once() -> None:
    """pause_turn, then a continuation that repeats the server_tool_use id: one block kept."""
    server_call = {"type": "server_tool_use", "id": "srv_1", "name": "bash", "input": {}}
    model = ScriptedModel(
        [
            {"content": [server_call], "stop_reason": "pause_turn"},
            {
                "content": [server_call, {"type": "text", "text": "done"}],
                "stop_reason": "end_turn",
            },
        ]
    )
    async with Session(model=model) as session:
        reply = await session.chat("go")
        merged = session.history[-1].content
    assert reply.text == "done"
    assert isinstance(merged, list)
    assert [b.type for b in merged] == ["server_tool_use", "text"]
