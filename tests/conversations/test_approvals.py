"""Approvals that wait: the turn stops with pending calls, and continues from there later."""

from __future__ import annotations

from typing import Any

import pytest

from conjure_async import Approve, Defer, Deny, Rewrite, Session, SessionStateError, ToolCall
from conjure_async.backends import NativeBackend
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolResultBlock
from conjure_async.store import SQLiteStore
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio

ran: list[tuple[str, Any]] = []


async def read_file(path: str) -> str:
    """Read a file."""
    ran.append(("read_file", path))
    return f"contents of {path}"


async def delete_file(path: str) -> str:
    """Delete a file."""
    ran.append(("delete_file", path))
    return f"deleted {path}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def last_results(request: MessagesRequest) -> list[tuple[str, Any, bool | None]]:
    last = request.messages[-1]
    assert isinstance(last.content, list)
    return [
        (b.tool_use_id, b.content, b.is_error)
        for b in last.content
        if isinstance(b, ToolResultBlock)
    ]


def both_calls() -> MessagesResponse:
    return tool_use_response(
        tool_call("read_file", {"path": "a.txt"}, id="t_read"),
        tool_call("delete_file", {"path": "b.txt"}, id="t_delete"),
        text="Reading a.txt, deleting b.txt.",
    )


def finish(request: MessagesRequest) -> MessagesResponse:
    return text_response(f"done: {last_results(request)}")


def session(model: ScriptedModel, **options: Any) -> Session[Any]:
    return Session(
        NativeBackend(read_file, delete_file),
        model=model,
        require_approval={"delete_file"},
        **options,
    )


async def test_a_marked_tool_waits_while_the_others_run_and_keep_their_results() -> None:
    """The read runs; the delete waits; approved later, the model gets both results at once."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        reply = await s.chat("tidy up")
        assert [(p.call_id, p.name, p.input, p.backend) for p in reply.pending] == [
            ("t_delete", "delete_file", {"path": "b.txt"}, "native")
        ]
        assert [c.name for c in reply.tool_calls] == ["read_file"]
        assert ran == [("read_file", "a.txt")]
        final = await s.chat(approvals={"t_delete": Approve()})
    assert ran == [("read_file", "a.txt"), ("delete_file", "b.txt")]
    assert final.pending == []
    assert last_results(model.requests[-1]) == [
        ("t_read", "contents of a.txt", None),
        ("t_delete", "deleted b.txt", None),
    ]


async def test_a_denied_call_tells_the_model_the_reason() -> None:
    """Deny(reason): the call never runs; its error result is the reason."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        await s.chat(approvals={"t_delete": Deny("Not b.txt: it is the backup.")})
    assert ran == [("read_file", "a.txt")]
    assert last_results(model.requests[-1])[1] == (
        "t_delete",
        "Not b.txt: it is the backup.",
        True,
    )


@pytest.mark.parametrize("decision", [Approve(input={"path": "c.txt"}), Rewrite({"path": "c.txt"})])
async def test_an_approval_may_edit_the_input(decision: Any) -> None:
    """Approve(input=...) (or Rewrite) runs the call with the approver's arguments."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        final = await s.chat(approvals={"t_delete": decision})
    assert ran[-1] == ("delete_file", "c.txt")
    assert final.tool_calls[-1].input == {"path": "c.txt"}


async def test_an_edited_input_the_schema_refuses_is_the_calls_error_result() -> None:
    """An edit missing a required field does not run; the model reads why."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        await s.chat(approvals={"t_delete": Approve(input={"wrong": 1})})
    assert ran == [("read_file", "a.txt")]
    call_id, text, is_error = last_results(model.requests[-1])[1]
    assert (call_id, is_error) == ("t_delete", True)
    assert "after the approver edited them" in text
    assert "path" in text


async def test_a_hook_can_defer_a_call_to_a_person() -> None:
    """before_tool_call returning Defer() stops the turn with that call pending."""

    async def hook(call: ToolCall, ctx: Any) -> Defer | None:
        return Defer() if call.input.get("path") == "a.txt" else None

    model = ScriptedModel([both_calls(), finish])
    async with Session(
        NativeBackend(read_file, delete_file), model=model, before_tool_call=hook
    ) as s:
        reply = await s.chat("tidy up")
        assert [p.call_id for p in reply.pending] == ["t_read"]
        assert ran == [("delete_file", "b.txt")]
        await s.chat(approvals={"t_read": Approve()})  # the hook is not asked again
    assert ran == [("delete_file", "b.txt"), ("read_file", "a.txt")]


async def test_pending_calls_survive_dump_state_and_restore() -> None:
    """Stopped in one session, decided in another restored from its JSON state."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        reply = await s.chat("tidy up")
        state = s.dump_state()
    assert reply.pending
    restored = Session.restore(
        state,
        backend=NativeBackend(read_file, delete_file),
        model=model,
        require_approval={"delete_file"},
    )
    async with restored:
        final = await restored.chat(approvals={"t_delete": Approve()})
    assert final.text.startswith("done:")
    assert ran == [("read_file", "a.txt"), ("delete_file", "b.txt")]
    assert len(last_results(model.requests[-1])) == 2


async def test_pending_calls_survive_a_store_round_trip(tmp_path: Any) -> None:
    """A request stops the turn; a later request (a new session on the same id) decides."""
    model = ScriptedModel([both_calls(), finish])
    async with (
        SQLiteStore(tmp_path / "c.db") as store,
        session(model, store=store, conversation_id="c") as s,
    ):
        reply = await s.chat("tidy up")
    assert [p.call_id for p in reply.pending] == ["t_delete"]
    async with (
        SQLiteStore(tmp_path / "c.db") as store,
        session(model, store=store, conversation_id="c") as s,
    ):
        final = await s.chat(approvals={"t_delete": Approve()})
    assert final.pending == []
    assert ran == [("read_file", "a.txt"), ("delete_file", "b.txt")]


async def test_a_new_message_while_calls_wait_is_refused_and_nothing_is_lost() -> None:
    """The error names the pending calls and says how to answer them."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        with pytest.raises(SessionStateError, match=r"await approval: \['t_delete'\]"):
            await s.chat("something else")
        final = await s.chat(approvals={"t_delete": Approve()})
    assert final.pending == []


@pytest.mark.parametrize(
    ("approvals", "match"),
    [
        ({}, "without a decision: \\['t_delete'\\]"),
        ({"t_delete": Approve(), "t_nope": Approve()}, "not awaiting approval: \\['t_nope'\\]"),
    ],
)
async def test_decisions_must_answer_exactly_the_pending_calls(
    approvals: dict[str, Any], match: str
) -> None:
    """Missing or unknown ids are refused; the calls still wait, and a right answer works."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        with pytest.raises(SessionStateError, match=match):
            await s.chat(approvals=approvals)
        final = await s.chat(approvals={"t_delete": Deny("no")})
    assert final.pending == []


async def test_a_decision_of_the_wrong_type_is_a_clear_type_error() -> None:
    """A bool instead of Approve() is refused before anything changes."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        await s.chat("tidy up")
        with pytest.raises(TypeError, match="must be Approve"):
            await s.chat(approvals={"t_delete": True})
        assert [p.call_id for p in (await s.chat(approvals={"t_delete": Approve()})).pending] == []


async def test_a_message_and_approvals_together_are_refused() -> None:
    """chat() takes one of them."""
    async with session(ScriptedModel([])) as s:
        with pytest.raises(ValueError, match="not both"):
            await s.chat("hi", approvals={})
        with pytest.raises(ValueError, match="not neither"):
            await s.chat()


async def test_approvals_can_be_streamed() -> None:
    """stream(approvals=...) yields the continued turn's events."""
    model = ScriptedModel([both_calls(), finish])
    async with session(model) as s:
        first = [e.kind async for e in s.stream("tidy up")]
        async with s.stream(approvals={"t_delete": Approve()}) as events:
            second = [e.kind async for e in events]
    assert first[-1] == "turn_finished"
    assert [k for k in second if k != "text_delta"] == [
        "tool_started",
        "tool_finished",
        "model_responded",
        "turn_finished",
    ]
