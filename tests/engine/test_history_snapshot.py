"""The history a request carries never changes afterwards, yet is not copied per request."""

from __future__ import annotations

from typing import Any

import pytest

from conjure_async import Session
from conjure_async._engine import Finished, TurnEngine
from conjure_async._turn import ToolSpec
from conjure_async.backends import ToolResult
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


async def echo(args: dict[str, Any]) -> str:
    return "ok"


def script(calls: int) -> list[MessagesResponse]:
    return [tool_use_response(tool_call("echo")) for _ in range(calls)] + [text_response("done")]


class Shares:
    """A model that keeps nothing of a request; notes whether it got the engine's own list."""

    model_name = "shares"

    def __init__(self, responses: list[MessagesResponse]) -> None:
        self.responses = responses
        self.session: Session[Any] | None = None
        self.shared: list[bool] = []
        self.lengths: list[int] = []

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        assert self.session is not None
        self.shared.append(request.messages is self.session._engine.history)
        self.lengths.append(len(request.messages))
        return self.responses.pop(0)


async def test_a_kept_request_keeps_the_messages_it_was_sent() -> None:
    """Requests a model keeps still hold the history as it was when each was sent."""
    model = ScriptedModel(script(3))
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        await session.chat("go")
        assert [len(r.messages) for r in model.requests] == [1, 3, 5, 7]
        assert len(session.history) == 8
        assert model.requests[0].messages[0].content == "go"


async def test_a_kept_message_list_keeps_its_messages() -> None:
    """A model keeping only ``request.messages`` (not the request) sees it unchanged later."""
    kept: list[list[Any]] = []
    responses = script(2)

    async def model(request: MessagesRequest) -> MessagesResponse:
        kept.append(request.messages)
        return responses.pop(0)

    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        await session.chat("go")
    assert [len(m) for m in kept] == [1, 3, 5]


async def test_the_history_is_not_copied_for_a_model_that_keeps_nothing() -> None:
    """Each request carries the engine's own list when nobody kept the one before."""
    model = Shares(script(4))
    async with Session(FuncBackend({"echo": echo}), model=model) as session:
        model.session = session
        reply = await session.chat("go")
    assert reply.text == "done"
    assert model.lengths == [1, 3, 5, 7, 9]
    assert model.shared == [True] * 5


def test_engine_copies_a_snapshot_someone_holds_before_changing_it() -> None:
    """A held snapshot stays as it was; the engine goes on with its own copy."""
    engine = TurnEngine([ToolSpec("echo", "test", {"type": "object"})])
    engine.begin("go")
    held = engine.snapshot()
    action = engine.on_response(tool_use_response(tool_call("echo", id="c1")))
    assert len(held) == 1
    assert len(engine.history) == 2
    assert held is not engine.history
    engine.on_result("c1", ToolResult(output="ok"))
    assert action is not None
    assert len(held) == 1


def test_engine_changes_a_dropped_snapshot_in_place() -> None:
    """A snapshot nobody holds any more is the list the engine keeps appending to."""
    engine = TurnEngine([ToolSpec("echo", "test", {"type": "object"})])
    engine.begin("go")
    before = id(engine.history)
    engine.snapshot()  # dropped at once, like a request the model did not keep
    engine.on_response(tool_use_response(tool_call("echo", id="c1")))
    assert id(engine.history) == before
    assert len(engine.history) == 2


def test_records_take_inputs_from_the_history_across_iterations_and_a_dump() -> None:
    """Each record lists its call's input, also for calls answered before a mid-turn dump/load."""
    specs = [ToolSpec("echo", "test", {"type": "object"})]
    engine = TurnEngine(specs)
    engine.begin("go")
    engine.on_response(tool_use_response(tool_call("echo", {"n": 1}, id="c1")))
    engine.on_result("c1", ToolResult(output="one"))
    engine.next_request()
    engine.on_response(
        tool_use_response(
            tool_call("echo", {"n": 2}, id="c2"), tool_call("echo", {"n": 3}, id="c3")
        )
    )
    engine.on_result("c3", ToolResult(output="three", exit_code=3))
    resumed = TurnEngine.load(engine.dump(), specs)
    resumed.on_result("c2", ToolResult(output="two"), input={"n": 20})
    resumed.next_request()
    finished = resumed.on_response(text_response("done"))
    assert isinstance(finished, Finished)
    records = [(r.call_id, r.input, r.output, r.exit_code) for r in finished.reply.tool_calls]
    assert records == [
        ("c1", {"n": 1}, "one", None),
        ("c2", {"n": 20}, "two", None),
        ("c3", {"n": 3}, "three", 3),
    ]
