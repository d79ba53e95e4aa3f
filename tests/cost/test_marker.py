"""The breakpoints a session adds: on copies, with JSON equal to their serialization."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conjure_async import PromptCaching
from conjure_async._caching import CacheMarker
from conjure_async.messages import JoinedMessages, Message, MessagesRequest


def _serialized(message: Message) -> bytes:
    return json.dumps(message.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()


MESSAGES = [
    {"role": "user", "content": "Plain text, é and ü"},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "t2", "name": "f", "input": {"b": 1, "a": [1, 2]}},
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hmm."}, {"type": "thinking", "thinking": "x"}],
    },
    {"role": "user", "content": [{"type": "text", "text": "x"}], "name": "an extra field"},
    {"role": "assistant", "content": [{"type": "compaction", "content": "Summary."}]},
]


@pytest.mark.parametrize("raw", MESSAGES)
def test_a_marked_copy_serializes_as_its_json_says(raw: dict[str, Any]) -> None:
    """A marked copy's spliced JSON is exactly its serialization; the original is unchanged."""
    original = Message.model_validate(raw)
    before = original.wire_json()
    copy = CacheMarker(PromptCaching(ttl="1h"))._copy(original)

    assert copy is not None
    assert copy.wire_json() == _serialized(copy)
    assert b'"cache_control":{"type":"ephemeral","ttl":"1h"}' in copy.wire_json()
    assert original.wire_json() == before
    assert b"cache_control" not in before


def test_nothing_markable_or_already_marked_gives_no_copy() -> None:
    """Only thinking, empty text, or a breakpoint of the user's own: the message is left alone."""
    marker = CacheMarker(PromptCaching())
    thinking = Message.model_validate(
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}
    )
    marked = Message.model_validate(
        {
            "role": "user",
            "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
        }
    )

    assert marker._copy(thinking) is None
    assert marker._copy(Message(role="user", content="")) is None
    assert marker._copy(marked) is None


def test_joined_history_stays_right_while_breakpoints_move() -> None:
    """Request after request, the joined JSON equals a fresh join; the history is never marked."""
    marker = CacheMarker(PromptCaching())
    joined = JoinedMessages()
    history: list[Message] = [Message(role="user", content="Start")]
    for step in range(30):
        request = MessagesRequest._fast(
            model="m",
            max_tokens=10,
            messages=list(history),
            system=None,
            tools=None,
            tool_choice=None,
            container=None,
            stream=None,
            betas=[],
        )
        marker.mark(request)
        assert bytes(joined.join(request.messages)) == b",".join(
            _serialized(m) for m in request.messages
        )
        if step % 5 == 4:  # the last message replaced by a longer one (as a continuation does)
            last = history.pop()
            history.append(
                Message.model_validate(
                    {
                        "role": "assistant",
                        "content": [*last.to_wire()["content"], {"type": "text", "text": "more"}],
                    }
                )
            )
        else:
            history.append(
                Message.model_validate(
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": f"t{step}", "name": "f", "input": {}}
                        ],
                    }
                )
            )
            history.append(
                Message.model_validate(
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": f"t{step}", "content": str(step)}
                        ],
                    }
                )
            )
    assert all(b"cache_control" not in m.wire_json() for m in history)
