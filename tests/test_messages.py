"""Wire models round-trip the JSON, unknown fields and block types included."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conjure_async import events as events_module
from conjure_async import messages as messages_module
from conjure_async.backends._output import OutputCapture
from conjure_async.messages import (
    JoinedMessages,
    Message,
    MessagesRequest,
    MessagesResponse,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ToolUseBlock,
    UnknownBlock,
)

RESPONSE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {"type": "text", "text": "hi", "citations": [{"type": "x"}]},
        {
            "type": "server_tool_use",
            "id": "srv_1",
            "name": "bash_code_execution",
            "input": {"command": "ls"},
            "caller": {"type": "direct"},
        },
        {
            "type": "bash_code_execution_tool_result",
            "tool_use_id": "srv_1",
            "content": {
                "type": "bash_code_execution_result",
                "stdout": "a\n",
                "stderr": "",
                "return_code": 0,
                "content": [],
            },
        },
        {"type": "brand_new_block", "payload": {"x": 1}},
        {"type": "tool_use", "id": "toolu_1", "name": "view", "input": {"path": "/a"}},
    ],
    "stop_reason": "tool_use",
    "container": {"id": "container_1", "expires_at": "2026-12-01T00:00:00Z"},
    "usage": {
        "input_tokens": 5,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2,
        "service_tier": "standard",
    },
    "some_future_field": [1, 2],
}


def test_response_blocks_are_typed_and_unknown_ones_kept() -> None:
    response = MessagesResponse.model_validate(RESPONSE)
    assert [type(b) for b in response.content] == [
        TextBlock,
        ServerToolUseBlock,
        ServerToolResultBlock,
        UnknownBlock,
        ToolUseBlock,
    ]
    assert response.text == "hi"
    assert [u.id for u in response.tool_uses] == ["toolu_1"]


def test_response_round_trips_unknown_fields() -> None:
    response = MessagesResponse.model_validate(RESPONSE)
    assert response.to_wire() == RESPONSE


def test_request_body_excludes_betas_and_none() -> None:
    request = MessagesRequest(
        model="m",
        max_tokens=10,
        messages=[Message(role="user", content="hi")],
        betas=["skills-2025-10-02"],
    )
    assert request.body() == {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert request.betas == ["skills-2025-10-02"]


def test_fast_construct_equals_validated() -> None:
    fast = Message._fast(role="user", content="hi")
    assert fast == Message(role="user", content="hi")
    assert fast.to_wire() == {"role": "user", "content": "hi"}


_TRUSTED_VALUES: list[tuple[type[Any], dict[str, Any]]] = [
    (messages_module.TextBlock, {"text": "t"}),
    (messages_module.ToolUseBlock, {"id": "a", "name": "n", "input": {"x": 1}}),
    (messages_module.ToolResultBlock, {"tool_use_id": "a", "content": "r", "is_error": True}),
    (messages_module.Message, {"role": "assistant", "content": []}),
    (messages_module.Usage, {"input_tokens": 1, "output_tokens": 2}),
    (messages_module.MessagesRequest, {"model": "m", "max_tokens": 1, "messages": []}),
    (events_module.TextDelta, {"text": "t"}),
    (events_module.ToolStarted, {"call_id": "a", "name": "n", "input": {}, "backend": "b"}),
    (events_module.ToolFinished, {"call_id": "a", "name": "n", "backend": "b", "output": "o"}),
    (
        events_module.ToolCallRecord,
        {"call_id": "a", "name": "n", "input": {}, "backend": "b", "output": "o"},
    ),
    (events_module.Reply, {"text": "t", "stop_reason": None, "usage": messages_module.Usage()}),
    (events_module.Paused, {"count": 1}),
]


@pytest.mark.parametrize(
    ("cls", "values"), _TRUSTED_VALUES, ids=lambda v: getattr(v, "__name__", "")
)
def test_private_fast_construction_matches_validation_on_this_pydantic(
    cls: type[Any], values: dict[str, Any]
) -> None:
    """_fast (private) on pydantic 2: equals validation and shares no mutable default."""
    assert pydantic.VERSION.startswith("2."), "re-check _fast_construct for this pydantic"
    fast, checked = cls._fast(**values), cls(**values)
    assert fast == checked
    assert fast.model_dump() == checked.model_dump()
    assert fast.model_fields_set == checked.model_fields_set
    assert not hasattr(cls, "fast"), "the unvalidated constructor is private"
    again = cls._fast(**values)
    for name, value in fast.__dict__.items():
        if isinstance(value, list | dict) and name not in values:
            assert value is not again.__dict__[name], f"{cls.__name__}.{name} default is shared"


@given(st.lists(st.text(max_size=300), max_size=40), st.integers(min_value=2, max_value=500))
def test_output_capture_is_bounded_and_exact_when_small(chunks: list[str], limit: int) -> None:
    capture = OutputCapture(limit)
    forwarded = "".join(capture.add(c) for c in chunks)
    whole = "".join(chunks)
    text = capture.text()
    assert len(forwarded) <= limit // 2
    assert whole.startswith(forwarded)
    if len(whole) <= limit:
        assert text == whole
    else:
        assert text.startswith(whole[: limit // 2])
        assert text.endswith(whole[-(limit - limit // 2) :])
        assert f"[... {len(whole) - limit} characters cut ...]" in text


def test_body_json_matches_body_and_reuses_each_message_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = [Message(role="user", content="hé"), Message._fast(role="assistant", content="ok")]
    request = MessagesRequest(model="m", max_tokens=5, messages=history, tools=[{"name": "t"}])
    assert json.loads(request.body_json(stream=True)) == {**request.body(), "stream": True}
    assert json.loads(request.body_json(model="other"))["model"] == "other"
    calls: list[Message] = []
    original = Message.to_wire

    def counting(self: Message) -> dict[str, Any]:
        calls.append(self)
        return original(self)

    monkeypatch.setattr(Message, "to_wire", counting)
    request.body_json()
    request.body_json()
    assert calls == []  # both messages' JSON was computed once, above


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "replace_last", "replace_any", "new_list", "drop_last"]),
            st.text(max_size=5),
            st.integers(0, 50),
        ),
        max_size=30,
    )
)
def test_joined_history_json_always_matches_a_fresh_join(steps: list[tuple[str, str, int]]) -> None:
    """Whatever happens to the list between requests, the kept prefix never goes stale."""
    joined = JoinedMessages()
    history: list[Message] = [Message(role="user", content="start")]
    for operation, text, index in steps:
        message = Message(role="user", content=text or "x")
        if operation == "append":
            history.append(message)
        elif operation == "replace_last":
            history[-1] = message
        elif operation == "replace_any":
            history[index % len(history)] = message
        elif operation == "new_list":
            history = [Message(role="user", content=m.content) for m in history]
        elif len(history) > 1:
            history.pop()
        expected = b",".join(m.wire_json() for m in history)
        assert bytes(joined.join(history)) == expected


def test_a_request_with_joined_history_serializes_only_new_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second request of a growing history converts only the messages added since."""
    joined = JoinedMessages()
    history = [Message(role="user", content="a"), Message(role="assistant", content="b")]

    def request() -> MessagesRequest:
        made = MessagesRequest(model="m", max_tokens=5, messages=list(history))
        made.join_with(joined)
        return made

    first = request()
    assert json.loads(first.body_json()) == first.body()
    seen: list[str] = []
    original = Message.wire_json

    def counting(self: Message) -> bytes:
        seen.append(str(self.content))
        return original(self)

    monkeypatch.setattr(Message, "wire_json", counting)
    history.append(Message(role="user", content="c"))
    second = request()
    assert json.loads(second.body_json()) == second.body()
    assert seen == ["c"]


def test_fast_built_messages_copy_pickle_and_change_like_validated_ones() -> None:
    """Shared fields sets and lazily made private dicts never leak between messages."""
    one = Message._fast(role="user", content="a")
    two = Message._fast(role="user", content="b")
    one.content = "changed"  # pydantic adds "content" to the (shared, full) fields set
    assert two.model_fields_set == {"role", "content"}
    assert two.content == "b"
    for copied in (
        copy.copy(one),
        copy.deepcopy(one),
        one.model_copy(),
        one.model_copy(deep=True),
        pickle.loads(pickle.dumps(one)),
    ):
        assert copied == one
        assert copied.to_wire() == {"role": "user", "content": "changed"}
    updated = two.model_copy(update={"content": "c"})
    assert (updated.content, two.content) == ("c", "b")
    assert one.wire_json() == b'{"role":"user","content":"changed"}'
    assert one == Message(role="user", content="changed"), "a cached JSON does not change equality"
