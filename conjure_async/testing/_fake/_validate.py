"""The fake API's checks of a request's shape that the real API answers with a 400.

* At most 4 blocks with ``cache_control`` in the whole request: tool
  definitions, system blocks and every message's blocks, those before a
  ``compaction`` block included (the API reads the body before it applies
  compaction).
* The first message is a ``user`` message, unless it starts with a
  ``compaction`` block: the compaction documentation lets a client "drop the
  compacted messages and only include the compaction block onwards", so the
  request then begins with the assistant message holding the block.
* Client tool calls and their results pair up: each ``tool_result`` answers
  a ``tool_use`` of the message just before it, and each ``tool_use`` is
  answered in the message just after it (a request cut between the two is
  refused).

The messages are the API's own (checked against its answers quoted in
public issue threads, 2026-11-28).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from conjure_async.testing._fake._http import HTTPError

__all__ = ["MAX_CACHE_CONTROL", "check_request"]

MAX_CACHE_CONTROL: Final = 4
"""Blocks with ``cache_control`` one request may have."""


def _blocks(content: Any) -> Sequence[Any]:
    return content if isinstance(content, list) else ()


def _marked(item: Any) -> bool:
    return isinstance(item, Mapping) and item.get("cache_control") is not None


def count_marks(body: Mapping[str, Any]) -> int:
    """The blocks of ``body`` with ``cache_control``: tools, system, every message."""
    tools = body.get("tools")
    count = sum(1 for tool in tools if _marked(tool)) if isinstance(tools, list) else 0
    count += sum(1 for block in _blocks(body.get("system")) if _marked(block))
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            count += sum(1 for block in _blocks(message.get("content")) if _marked(block))
    return count


def _ids(message: Any, kind: str, key: str) -> list[str]:
    if not isinstance(message, Mapping):
        return []
    return [
        str(block.get(key))
        for block in _blocks(message.get("content"))
        if isinstance(block, Mapping) and block.get("type") == kind
    ]


def _check_first(messages: Sequence[Any]) -> None:
    first = messages[0] if messages else None
    if not isinstance(first, Mapping) or first.get("role") != "assistant":
        return
    blocks = _blocks(first.get("content"))
    if not (blocks and isinstance(blocks[0], Mapping) and blocks[0].get("type") == "compaction"):
        raise HTTPError(400, 'messages: first message must use the "user" role')


def _check_pairs(messages: Sequence[Any]) -> None:
    previous: Any = None
    for index, message in enumerate(messages):
        calls = set(_ids(previous, "tool_use", "id"))
        if isinstance(message, Mapping) and message.get("role") == "user":
            for b_index, block in enumerate(_blocks(message.get("content"))):
                if (
                    isinstance(block, Mapping)
                    and block.get("type") == "tool_result"
                    and block.get("tool_use_id") not in calls
                ):
                    raise HTTPError(
                        400,
                        f"messages.{index}.content.{b_index}: unexpected `tool_use_id` found "
                        f"in `tool_result` blocks: {block.get('tool_use_id')}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block "
                        "in the previous message.",
                    )
        _check_answered(messages, index)
        previous = message


def _check_answered(messages: Sequence[Any], index: int) -> None:
    message = messages[index]
    if not isinstance(message, Mapping) or message.get("role") != "assistant":
        return
    calls = _ids(message, "tool_use", "id")
    if not calls:
        return
    following = messages[index + 1] if index + 1 < len(messages) else None
    answered = set(_ids(following, "tool_result", "tool_use_id"))
    missing = [call for call in calls if call not in answered]
    if missing:
        raise HTTPError(
            400,
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message.",
        )


def check_request(body: Mapping[str, Any]) -> None:
    """Refuse what the API refuses in a request's shape (see the module docstring).

    Raises:
        HTTPError: Too many ``cache_control`` blocks, an assistant message
            first without a ``compaction`` block, or unpaired tool calls.
    """
    marks = count_marks(body)
    if marks > MAX_CACHE_CONTROL:
        raise HTTPError(
            400,
            f"A maximum of {MAX_CACHE_CONTROL} blocks with cache_control may be provided. "
            f"Found {marks}.",
        )
    messages = body.get("messages")
    if isinstance(messages, list):
        _check_first(messages)
        _check_pairs(messages)
