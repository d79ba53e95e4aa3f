"""Property: whatever the model answers and however the turn is cut, every request is valid."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conjure_async import ToolResult
from conjure_async._engine import (
    Continue,
    Finished,
    RunTools,
    SendRequest,
    Stopped,
    ToolSpec,
    TurnEngine,
)
from conjure_async.messages import MessagesResponse
from tests.engine.wire import api_valid

TOOLS = [
    ToolSpec("echo", "func", {"type": "object", "required": ["text"]}),
    ToolSpec("ls", "local", {"type": "object"}),
]
IDS = [f"toolu_{i}" for i in range(4)]
SERVER_IDS = [f"srv_{i}" for i in range(3)]

blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(min_size=1, max_size=5)),
    st.builds(
        lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a},
        st.sampled_from(IDS),
        st.sampled_from(["echo", "ls", "missing"]),
        st.sampled_from([{}, {"text": "x"}, {"text": 1}]),
    ),
    st.builds(
        lambda i: {"type": "server_tool_use", "id": i, "name": "bash", "input": {}},
        st.sampled_from(SERVER_IDS),
    ),
    st.builds(
        lambda i: {"type": "bash_code_execution_tool_result", "tool_use_id": i, "content": {}},
        st.sampled_from(SERVER_IDS),
    ),
)
responses = st.builds(
    lambda content, stop: MessagesResponse.model_validate(
        {"content": content, "stop_reason": stop, "usage": {"input_tokens": 1}}
    ),
    st.lists(blocks, max_size=5),
    st.sampled_from(["end_turn", "tool_use", "pause_turn", "max_tokens", "stop_sequence"]),
)


def reload(engine: TurnEngine, data: st.DataObject) -> TurnEngine:
    """Sometimes dump the engine to JSON and carry on with a loaded copy."""
    if data.draw(st.booleans(), label="reload"):
        dumped = json.dumps(engine.dump())
        loaded = TurnEngine.load(dumped, TOOLS, max_iterations=6, max_pause_continuations=2)
        assert loaded.dump() == engine.dump()
        return loaded
    return engine


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), turns=st.integers(min_value=1, max_value=3))
def test_every_request_is_valid_whatever_happens(data: st.DataObject, turns: int) -> None:
    """Random responses, result orders, cancellations and reloads never break a request."""
    engine = TurnEngine(TOOLS, max_iterations=6, max_pause_continuations=2)
    for turn in range(turns):
        action: Any = engine.begin(f"message {turn}")
        continuing = False
        while True:
            engine = reload(engine, data)
            if isinstance(action, SendRequest):
                api_valid(engine.history, continuing=continuing)
                if data.draw(st.integers(0, 9), label="cancel while waiting") == 0:
                    engine.cancel()
                    break
                action = engine.on_response(data.draw(responses, label="response"))
                continuing = False
            elif isinstance(action, RunTools):
                ids = [call.id for call in action.calls]
                assert len(ids) == len(set(ids))
                order = data.draw(st.permutations(ids), label="result order")
                cut = data.draw(st.integers(0, len(order) + 2), label="cancel after")
                if cut < len(order):
                    for call_id in order[:cut]:
                        engine.on_result(call_id, ToolResult(output=f"r {call_id}"))
                    engine = reload(engine, data)
                    engine.cancel()
                    break
                for call_id in order:
                    refusal = action.refusals.get(call_id)
                    result = ToolResult(output=refusal or "ok", is_error=refusal is not None)
                    engine.on_result(call_id, result)
                    engine = reload(engine, data)
                action = engine.next_request()
            elif isinstance(action, Continue):
                action = engine.next_request()
                continuing = True
            else:
                assert isinstance(action, Finished | Stopped)
                break
    engine.begin("one more")
    api_valid(engine.history)
