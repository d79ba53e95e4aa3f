"""The turn engine on its own: fed responses and results, it answers actions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conjure_async import SessionStateError, ToolCall, ToolResult
from conjure_async._engine import (
    INVALID_ARGUMENTS,
    NOT_RUN_CANCELLED,
    NOT_RUN_MAX_TOKENS,
    Continue,
    Finished,
    RunTools,
    SendRequest,
    Stopped,
    StopReason,
    ToolSpec,
    TurnEngine,
    TurnPhase,
)
from conjure_async.events import CreatedFile, FileCreated, ToolFinished, ToolStarted
from conjure_async.messages import Message, MessagesResponse, ToolResultBlock
from tests.engine.wire import api_valid, response, text, tool_use, wire

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
TOOLS = [
    ToolSpec("echo", "func", SCHEMA),
    ToolSpec("ls", "local", {"type": "object"}),
]


def engine(**options: Any) -> TurnEngine:
    return TurnEngine(TOOLS, **options)


def ok(output: str = "ok", **fields: Any) -> ToolResult:
    return ToolResult(output=output, **fields)


def run_tools(action: Any) -> RunTools:
    assert isinstance(action, RunTools), action
    return action


def finished(action: Any) -> Finished:
    assert isinstance(action, Finished), action
    return action


# -- a turn, step by step -----------------------------------------------------


def test_a_text_answer_finishes_the_turn_with_its_reply() -> None:
    """begin -> SendRequest; a text response -> Finished with text, usage, iterations."""
    e = engine()
    assert e.begin("hi") == SendRequest()
    assert e.phase is TurnPhase.AWAITING_RESPONSE
    assert wire(e.history) == [{"role": "user", "content": "hi"}]
    reply = finished(e.on_response(response([text("hello")]))).reply
    assert (reply.text, reply.stop_reason, reply.iterations) == ("hello", "end_turn", 1)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (3, 4)
    assert e.phase is TurnPhase.IDLE
    assert wire(e.history)[-1] == {"role": "assistant", "content": [text("hello")]}


def test_tool_calls_are_handed_out_and_their_results_answer_them_in_call_order() -> None:
    """Two calls; results arrive in reverse order; results and records keep call order."""
    e = engine()
    e.begin("go")
    tools = run_tools(
        e.on_response(
            response([tool_use("a", "echo", {"text": "1"}), tool_use("b", "ls")], "tool_use")
        )
    )
    assert tools.calls == (ToolCall("a", "echo", {"text": "1"}), ToolCall("b", "ls", {}))
    assert tools.refusals == {}
    assert e.phase is TurnPhase.RUNNING_TOOLS
    assert list(e.on_result("b", ok("listing"))) == []
    assert list(e.on_result("a", ok("1", is_error=True))) == []
    assert e.next_request() == SendRequest()
    assert wire(e.history)[-1] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "1", "is_error": True},
            {"type": "tool_result", "tool_use_id": "b", "content": "listing"},
        ],
    }
    reply = finished(e.on_response(response([text("done")]))).reply
    assert [(r.call_id, r.backend, r.output, r.is_error) for r in reply.tool_calls] == [
        ("a", "func", "1", True),
        ("b", "local", "listing", False),
    ]
    assert reply.iterations == 2
    api_valid(e.history)


def test_a_rewritten_input_is_what_the_reply_records() -> None:
    """on_result(input=...) records the input the call really ran with."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "echo", {"text": "x"})], "tool_use"))
    e.on_result("a", ok(), input={"text": "rewritten"})
    e.next_request()
    reply = finished(e.on_response(response([text("k")]))).reply
    assert reply.tool_calls[0].input == {"text": "rewritten"}


def test_on_results_takes_a_whole_batch() -> None:
    """on_results(mapping) is on_result per call, then next_request."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "ls"), tool_use("b", "ls")], "tool_use"))
    assert e.on_results({"b": ok("2"), "a": ok("1")}) == SendRequest()
    assert [b["content"] for b in wire(e.history)[-1]["content"]] == ["1", "2"]


def test_block_list_outputs_pass_through_as_result_content() -> None:
    """A result of content blocks reaches the history as blocks; the record keeps the text."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "ls")], "tool_use"))
    blocks = [{"type": "text", "text": "line"}]
    e.on_result("a", ToolResult(output=blocks))
    e.next_request()
    assert wire(e.history)[-1]["content"][0]["content"] == blocks


# -- calls the engine answers itself ----------------------------------------


def test_an_unknown_tool_is_refused_naming_the_available_tools() -> None:
    """A call of a tool no backend serves comes back in refusals with the sorted names."""
    e = engine()
    e.begin("go")
    tools = run_tools(e.on_response(response([tool_use("a", "nope")], "tool_use")))
    assert tools.refusals == {"a": "Unknown tool 'nope'. Available tools: echo, ls."}
    e.on_result("a", ToolResult(output=tools.refusals["a"], is_error=True))
    e.next_request()
    reply = finished(e.on_response(response([text("k")]))).reply
    assert reply.tool_calls[0].backend == "none"


def test_an_unknown_tool_with_no_tools_at_all_says_none() -> None:
    """With no tools the refusal lists 'none'."""
    e = TurnEngine()
    e.begin("go")
    tools = run_tools(e.on_response(response([tool_use("a", "x")], "tool_use")))
    assert tools.refusals["a"].endswith("Available tools: none.")


@pytest.mark.parametrize(
    ("arguments", "problems"),
    [
        ({}, ["missing required field 'text'"]),
        ({"text": 5}, ["input.text must be of type string"]),
        ({"text": "x", "more": 1}, ["unexpected field 'more'"]),
        ({"txt": 5}, ["missing required field 'text'", "unexpected field 'txt'"]),
    ],
)
def test_input_failing_the_schema_is_refused_with_every_problem(
    arguments: dict[str, Any], problems: list[str]
) -> None:
    """Schema-invalid input is refused before anything runs; the text names each problem."""
    e = engine()
    e.begin("go")
    tools = run_tools(e.on_response(response([tool_use("a", "echo", arguments)], "tool_use")))
    refusal = tools.refusals["a"]
    assert refusal.startswith(INVALID_ARGUMENTS.format(name="echo", problems=""))
    for problem in problems:
        assert problem in refusal


def test_check_rewrite_checks_a_hooks_input_against_the_schema() -> None:
    """A rewrite is valid (None) or refused with the rewrite text."""
    e = engine()
    assert e.check_rewrite("echo", {"text": "fine"}) is None
    refusal = e.check_rewrite("echo", {"text": 42})
    assert refusal is not None
    assert "after the before_tool_call hook rewrote them" in refusal
    assert "input.text must be of type string" in refusal


def test_a_call_cut_off_by_max_tokens_is_answered_not_run_and_ends_the_turn() -> None:
    """max_tokens with tool_use: nothing to run, the call answered, stop_reason max_tokens."""
    e = engine()
    e.begin("go")
    action = e.on_response(response([text("Let me"), tool_use("cut", "echo", {})], "max_tokens"))
    reply = finished(action).reply
    assert (reply.stop_reason, reply.text, reply.tool_calls) == ("max_tokens", "Let me", [])
    last = wire(e.history)[-1]
    assert last["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "cut",
            "content": NOT_RUN_MAX_TOKENS,
            "is_error": True,
        }
    ]
    api_valid(e.history)


def test_a_repeated_tool_use_id_is_dropped_and_reported() -> None:
    """Two blocks sharing an id: one call handed out, one stored, the id in dropped_ids."""
    e = engine()
    e.begin("go")
    tools = run_tools(
        e.on_response(
            response(
                [tool_use("same", "ls", {"n": 1}), text("and"), tool_use("same", "ls", {"n": 2})],
                "tool_use",
            )
        )
    )
    assert [c.input for c in tools.calls] == [{"n": 1}]
    assert e.dropped_ids == ("same",)
    assert [b["type"] for b in wire(e.history)[-1]["content"]] == ["tool_use", "text"]
    e.on_result("same", ok())
    e.next_request()
    api_valid(e.history)


def test_repeated_server_tool_use_ids_are_dropped_too() -> None:
    """server_tool_use blocks obey the same rule."""
    e = engine()
    e.begin("go")
    server = {"type": "server_tool_use", "id": "s", "name": "bash", "input": {}}
    e.on_response(response([server, server, text("x")]))
    assert e.dropped_ids == ("s",)
    assert [b["type"] for b in wire(e.history)[-1]["content"]] == ["server_tool_use", "text"]


def test_an_empty_response_stores_nothing() -> None:
    """content [] (whatever the stop reason): the reply is empty, the history unchanged."""
    e = engine()
    e.begin("go")
    reply = finished(e.on_response(response([], "tool_use"))).reply
    assert reply.text == ""
    assert wire(e.history) == [{"role": "user", "content": "go"}]


# -- pauses and limits ------------------------------------------------------------


def test_a_pause_continues_and_the_continuation_merges_into_one_message() -> None:
    """pause_turn -> Continue(1) -> SendRequest; the next response joins the paused message."""
    e = engine()
    e.begin("long job")
    assert e.on_response(response([text("working")], "pause_turn")) == Continue(1)
    assert e.phase is TurnPhase.CONTINUING
    assert e.next_request() == SendRequest()
    assert [m["role"] for m in wire(e.history)] == ["user", "assistant"]
    reply = finished(e.on_response(response([text(" done")]))).reply
    assert reply.text == "working done"
    assert wire(e.history)[-1]["content"] == [text("working"), text(" done")]


def test_a_continuation_repeating_an_id_of_the_paused_message_drops_it() -> None:
    """The merged message never holds one server_tool_use id twice."""
    e = engine()
    e.begin("go")
    server = {"type": "server_tool_use", "id": "s1", "name": "bash", "input": {}}
    e.on_response(response([server], "pause_turn"))
    e.next_request()
    e.on_response(response([server, text("done")]))
    assert e.dropped_ids == ("s1",)
    assert [b["type"] for b in wire(e.history)[-1]["content"]] == ["server_tool_use", "text"]


def test_pauses_are_bounded_then_the_turn_finishes_paused() -> None:
    """Past max_pause_continuations the turn finishes with stop_reason pause_turn."""
    e = engine(max_pause_continuations=2)
    e.begin("go")
    assert e.on_response(response([text(".")], "pause_turn")) == Continue(1)
    e.next_request()
    assert e.on_response(response([text(".")], "pause_turn")) == Continue(2)
    e.next_request()
    reply = finished(e.on_response(response([text(".")], "pause_turn"))).reply
    assert (reply.stop_reason, reply.iterations) == ("pause_turn", 3)


def test_the_next_turn_drops_a_paused_server_call_left_without_result() -> None:
    """After an exhausted pause, begin() removes the dangling server_tool_use."""
    e = engine(max_pause_continuations=0)
    e.begin("go")
    dangling = {"type": "server_tool_use", "id": "s1", "name": "bash", "input": {}}
    e.on_response(response([text("Working."), dangling], "pause_turn"))
    e.begin("something else")
    assert [m["role"] for m in wire(e.history)] == ["user", "assistant", "user"]
    assert wire(e.history)[1]["content"] == [text("Working.")]


def test_an_assistant_message_of_only_a_dangling_server_call_is_removed() -> None:
    """If nothing else is left the paused message goes, and the user messages merge."""
    e = engine(max_pause_continuations=0)
    e.begin("go")
    e.on_response(
        response([{"type": "server_tool_use", "id": "s", "name": "x", "input": {}}], "pause_turn")
    )
    e.begin("again")
    assert wire(e.history) == [
        {"role": "user", "content": [text("go"), text("again")]},
    ]


def test_max_iterations_stops_after_the_results_are_stored() -> None:
    """The call after the last allowed one is not sent; the history is consistent."""
    e = engine(max_iterations=2)
    e.begin("go")
    for round_ in range(2):
        e.on_response(response([tool_use(f"c{round_}", "ls")], "tool_use"))
        e.on_result(f"c{round_}", ok())
        action = e.next_request()
    assert action == Stopped(StopReason.MAX_ITERATIONS, 2)
    assert e.phase is TurnPhase.IDLE
    api_valid(e.history)


def test_max_iterations_also_bounds_pause_continuations() -> None:
    """A pause past the iteration limit stops the turn the same way."""
    e = engine(max_iterations=1)
    e.begin("go")
    assert e.on_response(response([text(".")], "pause_turn")) == Continue(1)
    assert e.next_request() == Stopped(StopReason.MAX_ITERATIONS, 1)


# -- cancellation and misuse --------------------------------------------------------


def test_cancel_keeps_results_in_and_answers_the_rest_as_cancelled() -> None:
    """cancel() mid-batch: finished results stay, the others say cancelled."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "ls"), tool_use("b", "ls")], "tool_use"))
    e.on_result("b", ok("done"))
    e.cancel()
    assert e.phase is TurnPhase.IDLE
    assert [(b["content"], b.get("is_error")) for b in wire(e.history)[-1]["content"]] == [
        (NOT_RUN_CANCELLED, True),
        ("done", None),
    ]
    api_valid(e.history)


def test_cancel_while_waiting_for_the_model_then_begin_merges_the_user_message() -> None:
    """A turn cancelled before any response leaves one user message; the next one merges."""
    e = engine()
    e.begin("first")
    e.cancel()
    e.cancel()  # idempotent
    e.begin("second")
    assert wire(e.history) == [{"role": "user", "content": [text("first"), text("second")]}]


@pytest.mark.parametrize(
    "misuse",
    [
        lambda e: e.on_response(response([text("x")])),
        lambda e: e.on_result("a", ok()),
        lambda e: e.next_request(),
        lambda e: e.note_event(FileCreated(file=CreatedFile(name="f", source="x"))),
    ],
    ids=["response", "result", "next_request", "event"],
)
def test_steps_out_of_order_raise_session_state_error(misuse: Any) -> None:
    """Feeding an idle engine anything but begin is a SessionStateError."""
    with pytest.raises(SessionStateError, match="idle"):
        misuse(engine())


def test_a_result_for_no_waiting_call_is_refused() -> None:
    """An unknown id, or a second result for one call, raises; so does an early next_request."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "ls"), tool_use("b", "ls")], "tool_use"))
    with pytest.raises(SessionStateError, match="'zz'"):
        e.on_result("zz", ok())
    e.on_result("a", ok())
    with pytest.raises(SessionStateError, match="'a'"):
        e.on_result("a", ok())
    with pytest.raises(SessionStateError, match=r"\['b'\]"):
        e.next_request()
    with pytest.raises(SessionStateError, match="running_tools"):
        e.begin("again")


def test_limits_must_be_sensible() -> None:
    """max_iterations < 1 is refused."""
    with pytest.raises(ValueError, match="max_iterations"):
        TurnEngine(max_iterations=0)


# -- files and server-side work ------------------------------------------------------


def test_files_from_results_are_announced_once_per_turn_and_kept_per_session() -> None:
    """The same file twice in a turn: announced once, the later version kept."""
    e = engine()
    e.begin("go")
    e.on_response(response([tool_use("a", "ls"), tool_use("b", "ls")], "tool_use"))
    first = CreatedFile(name="r.txt", source="local", path="/w/r.txt", size_bytes=1)
    second = CreatedFile(name="r.txt", source="local", path="/w/r.txt", size_bytes=2)
    assert e.on_result("a", ok(files=(first,))) == [first]
    assert list(e.on_result("b", ok(files=(second,)))) == []
    e.next_request()
    reply = finished(e.on_response(response([text("k")]))).reply
    assert reply.files == [second]
    assert e.files == [second]
    e.begin("again")
    e.on_response(response([tool_use("c", "ls")], "tool_use"))
    assert e.on_result("c", ok(files=(first,))) == [first]  # a new turn announces it again
    assert e.files == [first]


def test_server_side_events_are_recorded_with_their_input() -> None:
    """tool_started gives the input, tool_finished the outcome; files are deduplicated."""
    e = engine()
    e.begin("go")
    started = ToolStarted(call_id="s1", name="bash", input={"command": "ls"}, backend="anthropic")
    done = ToolFinished(call_id="s1", name="bash", backend="anthropic", output="a\n")
    created = FileCreated(file=CreatedFile(name="a", source="anthropic", file_id="f1"))
    assert e.note_event(started)
    assert e.note_event(done)
    assert e.note_event(created)
    assert not e.note_event(created)
    reply = finished(e.on_response(response([text("ok")]))).reply
    (record,) = reply.tool_calls
    assert (record.call_id, record.input, record.output, record.backend) == (
        "s1",
        {"command": "ls"},
        "a\n",
        "anthropic",
    )
    assert [f.file_id for f in reply.files] == ["f1"]


# -- state ----------------------------------------------------------------------------


def test_a_history_ending_in_an_unanswered_call_is_repaired_as_cancelled() -> None:
    """An engine built from a history saved mid-call answers the call as cancelled."""
    messages = [
        Message(role="user", content="hi"),
        Message.model_validate({"role": "assistant", "content": [tool_use("t1", "ls")]}),
    ]
    e = TurnEngine(TOOLS, messages=messages)
    last = e.history[-1].content
    assert isinstance(last, list)
    assert isinstance(last[0], ToolResultBlock)
    assert (last[0].content, last[0].is_error) == (NOT_RUN_CANCELLED, True)
    api_valid(e.history)


def test_a_dump_mid_turn_loads_and_the_turn_goes_on_as_if_never_stopped() -> None:
    """Dump with one of two results in; load from JSON; finish the turn: same as uninterrupted."""

    def first_half(e: TurnEngine) -> None:
        e.begin("go")
        e.on_response(
            response([text("two calls"), tool_use("a", "ls"), tool_use("b", "ls")], "tool_use")
        )
        e.on_result("b", ok("B", files=(CreatedFile(name="f", source="local", path="/f"),)))

    def second_half(e: TurnEngine) -> Finished:
        e.on_result("a", ok("A"))
        assert e.next_request() == SendRequest()
        return finished(e.on_response(response([text("done")])))

    straight = engine()
    first_half(straight)
    expected = second_half(straight)

    paused = engine()
    first_half(paused)
    state = json.dumps(paused.dump())
    resumed = TurnEngine.load(state, TOOLS)
    assert resumed.phase is TurnPhase.RUNNING_TOOLS
    assert resumed.dump() == paused.dump()
    assert second_half(resumed) == expected
    assert wire(resumed.history) == wire(straight.history)
    assert resumed.usage == straight.usage


def test_an_idle_dump_round_trips() -> None:
    """Between turns: history, usage and files come back the same."""
    e = engine()
    e.begin("go")
    e.on_response(response([text("hi")]))
    loaded = TurnEngine.load(e.dump(), TOOLS)
    assert loaded.phase is TurnPhase.IDLE
    assert loaded.dump() == e.dump()


@pytest.mark.parametrize(
    "state",
    [
        "[]",
        {"version": 2, "messages": []},
        {"version": 1},
        {"version": 1, "messages": [{"role": "robot", "content": "x"}]},
        {"version": 1, "messages": [], "turn": {"phase": "flying"}},
        {"version": 1, "messages": [], "turn": {"phase": "idle"}},
        {
            "version": 1,
            "messages": [],
            "turn": {
                "phase": "running_tools",
                "start": 1,
                "iterations": 1,
                "pauses": 0,
                "continuation": False,
                "calls": [{"id": "a", "name": "ls", "input": {}}],
                "results": [],
            },
        },
    ],
)
def test_a_malformed_dump_is_a_session_state_error(state: Any) -> None:
    """Whatever is wrong with the dump, load says so with SessionStateError."""
    with pytest.raises(SessionStateError, match="invalid engine state"):
        TurnEngine.load(state if isinstance(state, str) else json.dumps(state), TOOLS)


def test_reset_forgets_the_history_between_turns_only() -> None:
    """reset() clears the history when idle and refuses mid-turn."""
    e = engine()
    e.begin("go")
    with pytest.raises(SessionStateError):
        e.reset()
    e.on_response(response([text("x")]))
    e.reset()
    assert e.history == []
    assert e.usage.input_tokens == 3


def test_responses_with_every_stop_reason_keep_the_history_valid() -> None:
    """A response object is validated input: any stop reason ends the turn visibly."""
    for stop in ("end_turn", "stop_sequence", "refusal", None, "something_new"):
        e = engine()
        e.begin("go")
        reply = finished(
            e.on_response(
                MessagesResponse.model_validate({"content": [text("x")], "stop_reason": stop})
            )
        ).reply
        assert reply.stop_reason == stop
        api_valid(e.history)


def test_a_tool_call_built_for_the_hot_path_equals_the_constructors() -> None:
    """The engine's slot-built ToolCall is equal to ToolCall(...) and has every field set."""
    import dataclasses

    from conjure_async._turn import new_tool_call

    built = new_tool_call("toolu_1", "noop", {"i": 1})
    assert built == ToolCall("toolu_1", "noop", {"i": 1})
    assert [f.name for f in dataclasses.fields(ToolCall)] == ["id", "name", "input"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.id = "other"  # type: ignore[misc]  # frozen, as the constructor's
