"""Building responses and checking histories against the Messages API's rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conjure_async.messages import Message, MessagesResponse


def text(value: str) -> dict[str, Any]:
    """A text block."""
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
    """A client tool_use block."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": dict(input or {})}


def response(
    content: list[dict[str, Any]], stop_reason: str | None = "end_turn"
) -> MessagesResponse:
    """A validated model response."""
    return MessagesResponse.model_validate(
        {
            "id": "msg_x",
            "model": "m",
            "content": content,
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
    )


def wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The history as the API receives it."""
    return [m.to_wire() for m in messages]


def api_valid(messages: Sequence[Message], *, continuing: bool = False) -> None:
    """The rules the Messages API enforces on a history.

    By default the history must accept a new user message (nothing left
    unanswered at the end). With ``continuing`` it is a request sent as is:
    it may end with the assistant's paused message.
    """
    history = wire(messages)
    assert history, "empty history"
    assert history[0]["role"] == "user", "the first message is not the user's"
    for index, message in enumerate(history):
        content = message["content"]
        assert content, f"message {index} has empty content"
        if index:
            assert message["role"] != history[index - 1]["role"], f"two {message['role']} in a row"
        if message["role"] != "assistant" or isinstance(content, str):
            continue
        ids = [b["id"] for b in content if b["type"] == "tool_use"]
        server = [b["id"] for b in content if b["type"] == "server_tool_use"]
        assert len(ids) == len(set(ids)), f"duplicate tool_use ids in message {index}"
        assert len(server) == len(set(server)), f"duplicate server_tool_use ids in {index}"
        last = index + 1 == len(history)
        if last and not continuing:
            answered = {b["tool_use_id"] for b in content if b["type"].endswith("_tool_result")}
            assert set(server) <= answered, "a server_tool_use without result at the end"
        if not ids:
            continue
        assert not last, "unanswered tool_use at the end of the history"
        results = [
            b["tool_use_id"] for b in history[index + 1]["content"] if b["type"] == "tool_result"
        ]
        assert results[: len(ids)] == ids, f"results of message {index} out of order"
        assert set(results) <= set(ids), f"a result for no call of message {index}"
        assert len(results) == len(set(results)), "two results for one call"
