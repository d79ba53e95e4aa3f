"""The session keeps its history valid for the API whatever the model or a restored state holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conjure_async import Session, SessionStateError, SkillConflictError, load_skills
from conjure_async.backends import LocalBackend, NativeBackend, NativeSkill, ToolContext
from conjure_async.events import ToolFinished
from conjure_async.messages import MessagesResponse, ToolResultBlock, ToolUseBlock
from conjure_async.testing import ScriptedModel, collect, text_response, tool_call
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


async def echo(args: dict[str, Any]) -> str:
    return f"echo {args.get('text', '')}"


def api_valid(messages: list[Any]) -> None:
    """The rules the Messages API enforces on a history that a new user message follows."""
    wire = [m.to_wire() if hasattr(m, "to_wire") else m for m in messages]
    assert wire, "empty history"
    assert wire[0]["role"] == "user"
    for index, message in enumerate(wire):
        content = message["content"]
        assert content, f"message {index} has empty content"
        if index:
            assert message["role"] != wire[index - 1]["role"], f"two {message['role']} in a row"
        if message["role"] != "assistant" or isinstance(content, str):
            continue
        ids = [b["id"] for b in content if b["type"] == "tool_use"]
        assert len(ids) == len(set(ids)), f"duplicate tool_use ids in message {index}"
        if not ids:
            continue
        assert index + 1 < len(wire), "unanswered tool_use at the end of the history"
        answered = [
            b["tool_use_id"] for b in wire[index + 1]["content"] if b["type"] == "tool_result"
        ]
        assert answered[: len(ids)] == ids
        assert len(answered) == len(set(answered))


def response(content: list[dict[str, Any]], stop_reason: str) -> MessagesResponse:
    return MessagesResponse.model_validate(
        {
            "id": "msg_x",
            "model": "scripted",
            "content": content,
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
    )


# -- item 16: a response cut off by max_tokens ---------------------------------


async def test_a_tool_call_cut_off_by_max_tokens_is_not_run_and_ends_the_turn() -> None:
    """stop_reason max_tokens with a tool_use: the truncated call never runs; the reply says so."""
    cut = response(
        [
            {"type": "text", "text": "Let me run it"},
            {"type": "tool_use", "id": "toolu_cut", "name": "echo", "input": {}},
        ],
        "max_tokens",
    )
    model = ScriptedModel([cut, text_response("fine")])
    backend = FuncBackend({"echo": echo})
    async with Session(backend, model=model, max_iterations=3) as session:
        reply = await session.chat("go")
        assert reply.stop_reason == "max_tokens"
        assert reply.text == "Let me run it"
        assert backend.calls == []
        assert reply.tool_calls == []
        assert len(model.requests) == 1
        # the history stays valid: the cut call is answered as not run
        api_valid(session.history)
        last = session.history[-1]
        assert isinstance(last.content, list)
        result = last.content[0]
        assert isinstance(result, ToolResultBlock)
        assert result.is_error
        assert "max_tokens" in str(result.content)
        # and the conversation goes on
        reply = await session.chat("shorter please")
        assert reply.text == "fine"
        api_valid(model.requests[-1].messages)


# -- item 18: responses that would make the next request invalid ---------------


async def test_duplicate_tool_use_ids_in_one_response_run_once() -> None:
    """Two tool_use blocks sharing an id: one runs, one result goes back, history valid."""
    model = ScriptedModel(
        [
            response(
                [
                    tool_call("echo", {"text": "a"}, id="toolu_same"),
                    tool_call("echo", {"text": "b"}, id="toolu_same"),
                ],
                "tool_use",
            ),
            text_response("done"),
        ]
    )
    backend = FuncBackend({"echo": echo})
    async with Session(backend, model=model) as session:
        events = await collect(session.stream("go"))
        finished = [e for e in events if isinstance(e, ToolFinished)]
        assert [e.call_id for e in finished] == ["toolu_same"]
        assert len(backend.calls) == 1
        api_valid(session.history)
        api_valid(model.requests[-1].messages)


async def test_an_empty_assistant_response_is_not_stored() -> None:
    """content [] with stop_reason tool_use: the turn ends, no empty message enters the history."""
    model = ScriptedModel([response([], "tool_use"), text_response("back")])
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        reply = await session.chat("go")
        assert reply.text == ""
        assert all(m.content for m in session.history)
        reply = await session.chat("again")
        assert reply.text == "back"
        api_valid(model.requests[-1].messages)
        api_valid(session.history)


async def test_an_empty_end_turn_response_keeps_the_next_request_valid() -> None:
    """content [] with end_turn (the API does send these): the next request is still valid."""
    model = ScriptedModel([response([], "end_turn"), text_response("back")])
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        assert (await session.chat("go")).text == ""
        await session.chat("again")
        api_valid(model.requests[-1].messages)


# -- item 25: duplicate skill names in one session ----------------------------


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "skills"


def test_the_same_skill_twice_in_one_backend_is_refused() -> None:
    """LocalBackend([s, s]) would list the skill twice: refused, naming the skill."""
    skill = load_skills(EXAMPLES)[0]
    with pytest.raises(SkillConflictError, match=f"{skill.name!r}.*twice"):
        Session(LocalBackend([skill, skill]), model=ScriptedModel([]))


def test_a_native_skill_named_like_a_local_skill_is_refused() -> None:
    """Two backends offering a skill of one name: refused like a tool-name clash."""
    skills = load_skills(EXAMPLES)

    class SameName(NativeSkill):
        name = skills[0].name
        description = "the same name, natively"

        async def execute(self, command: str, ctx: ToolContext[None]) -> str:
            return command

    with pytest.raises(SkillConflictError, match=rf"{skills[0].name!r}.*local.*native"):
        Session([LocalBackend(skills), NativeBackend(SameName)], model=ScriptedModel([]))


# -- item 28: restoring hostile state -----------------------------------------


def _good_state() -> dict[str, Any]:
    return {
        "version": 1,
        "session_id": "s1",
        "model_name": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "usage": {},
        "files": [],
        "backends": [{"kind": "func", "state": {}}],
    }


def _deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("null", "object"),
        ("[1, 2]", "object"),
        ("42", "object"),
        ('"text"', "object"),
        ("{not json", "JSON"),
        (_deep(100_000), "nested"),
        ({**_good_state(), "backends": [{"kind": "func", "state": "oops"}]}, "backend state"),
        ({**_good_state(), "backends": [{"kind": "func", "state": [1]}]}, "backend state"),
        ({**_good_state(), "backends": "func"}, "backends"),
        ({**_good_state(), "backends": ["func"]}, "backends"),
        ({**_good_state(), "session_id": 12}, "session_id"),
        ({**_good_state(), "model_name": ["x"]}, "model_name"),
        ({**_good_state(), "messages": "hi"}, "messages"),
        ({**_good_state(), "messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({**_good_state(), "usage": [1]}, "usage"),
        ({**_good_state(), "files": {"a": 1}}, "files"),
        ({**_good_state(), "version": "1"}, "version"),
        (
            {**_good_state(), "messages": [{"role": "user", "content": _deep_list(50_000)}]},
            "nested",
        ),
    ],
)
def test_restore_of_malformed_state_raises_session_state_error(state: Any, problem: str) -> None:
    """Whatever the state holds, restore raises SessionStateError saying what is wrong."""
    with pytest.raises(SessionStateError, match=problem) as caught:
        Session.restore(state, backend=FuncBackend({"echo": echo}), model=ScriptedModel([]))
    assert "invalid session state" in str(caught.value)


async def test_a_restored_history_ending_in_an_unanswered_tool_use_is_repaired() -> None:
    """A state saved mid tool call resumes with the call answered as cancelled."""
    state = _good_state()
    state["messages"].append(
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {}}],
        }
    )
    model = ScriptedModel([text_response("ok")])
    session = Session.restore(json.dumps(state), backend=FuncBackend({"echo": echo}), model=model)
    api_valid(session.history)
    last = session.history[-1]
    assert isinstance(last.content, list)
    assert isinstance(last.content[0], ToolResultBlock)
    assert last.content[0].is_error
    async with session:
        await session.chat("continue")
    api_valid(model.requests[-1].messages)
    assert not any(
        isinstance(b, ToolUseBlock) and b.id == "toolu_2"
        for m in session.history
        if isinstance(m.content, list)
        for b in m.content
    )
