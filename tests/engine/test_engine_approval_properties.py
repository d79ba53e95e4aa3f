"""Property: calls deferred for approval stop the turn and resume it from exactly there.

Random responses, some tools needing approval, hooks deferring random calls,
random decisions (approve, approve with edited input, deny), reloads from
JSON at any point, and new messages tried while calls wait: every request
stays valid, the results of calls that needed no approval are kept, and each
decided call gets exactly the answer its decision says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conjure_async import SessionStateError, ToolResult
from conjure_async._engine import (
    Continue,
    Finished,
    RunTools,
    SendRequest,
    Stopped,
    TurnEngine,
    TurnPhase,
)
from conjure_async.messages import ToolResultBlock
from tests.engine.test_engine_properties import TOOLS, responses
from tests.engine.wire import api_valid

NEEDS_APPROVAL = frozenset({"ls"})


def reload(engine: TurnEngine, data: st.DataObject) -> TurnEngine:
    """Sometimes carry on with a copy loaded from the engine's JSON (another process)."""
    if data.draw(st.booleans(), label="reload"):
        loaded = TurnEngine.load(
            json.dumps(engine.dump()),
            TOOLS,
            max_iterations=6,
            max_pause_continuations=2,
            require_approval=NEEDS_APPROVAL,
        )
        assert loaded.dump() == engine.dump()
        return loaded
    return engine


def results_of(engine: TurnEngine) -> dict[str, Any]:
    """Every tool result in the history, by call id (the last one wins)."""
    found: dict[str, Any] = {}
    for message in engine.history:
        if isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    found[block.tool_use_id] = block.content
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), turns=st.integers(min_value=1, max_value=3))
def test_deferred_calls_resume_from_exactly_where_the_turn_stopped(
    data: st.DataObject, turns: int
) -> None:
    """Approvals, denials, edits and reloads keep every request valid and every result."""
    engine = TurnEngine(
        TOOLS, max_iterations=6, max_pause_continuations=2, require_approval=NEEDS_APPROVAL
    )
    for turn in range(turns):
        action: Any = engine.begin(f"message {turn}")
        continuing = False
        expected: dict[str, str] = {}  # call id -> the result text it must end with
        while True:
            engine = reload(engine, data)
            if isinstance(action, SendRequest):
                api_valid(engine.history, continuing=continuing)
                got = results_of(engine)
                for call_id, text in expected.items():
                    assert got[call_id] == text, f"{call_id}: {got[call_id]!r} != {text!r}"
                expected.clear()
                action = engine.on_response(data.draw(responses, label="response"))
                continuing = False
            elif isinstance(action, RunTools):
                for call in action.calls:
                    assert (
                        action.approved
                        or call.name not in NEEDS_APPROVAL
                        or (call.id in action.refusals)
                    ), "a call needing approval was handed out before its decision"
                for call in data.draw(st.permutations(list(action.calls)), label="order"):
                    refusal = action.refusals.get(call.id)
                    defer = not action.approved and refusal is None
                    if defer and data.draw(st.integers(0, 3), label="hook defers") == 0:
                        engine.defer(call.id)
                        continue
                    output = refusal or f"ok {call.id} {json.dumps(call.input, sort_keys=True)}"
                    engine.on_result(call.id, ToolResult(output=output, is_error=bool(refusal)))
                    expected[call.id] = output
                    engine = reload(engine, data)
                action = engine.next_request()
            elif isinstance(action, Continue):
                action = engine.next_request()
                continuing = True
            elif isinstance(action, Finished) and action.reply.pending:
                assert engine.phase is TurnPhase.AWAITING_APPROVAL
                pending = engine.pending
                assert [p.call_id for p in pending] == [p.call_id for p in action.reply.pending]
                engine.cancel()  # a cancelled request does not lose the waiting calls
                with pytest.raises(SessionStateError):
                    engine.begin("a new message while calls wait")
                engine = reload(engine, data)
                approve: dict[str, dict[str, Any] | None] = {}
                deny: dict[str, str] = {}
                for call in pending:
                    choice = data.draw(st.sampled_from(["approve", "edit", "deny"]), label="how")
                    if choice == "deny":
                        deny[call.call_id] = f"denied {call.call_id}"
                        expected[call.call_id] = f"denied {call.call_id}"
                    else:
                        approve[call.call_id] = {"text": "edited"} if choice == "edit" else None
                action = engine.resolve(approve, deny)
            else:
                assert isinstance(action, Finished | Stopped)
                assert not engine.pending
                break
    engine.begin("one more")
    api_valid(engine.history)
