"""The rules that keep a conversation history a valid next request, as plain functions.

The Messages API accepts a history only if it starts with the user, the
roles alternate, no message is empty, every ``tool_use`` is answered first
thing in the next message (and no id repeats), and no ``server_tool_use``
is left without its result before a new user message. The turn engine
(:mod:`conjure_async._engine`) keeps those rules by calling these functions
on its own list; none does I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

from conjure_async.messages import (
    ContentBlock,
    Message,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from conjure_async.messages import _fast_construct as _build

__all__ = [
    "COPY_ON_WRITE",
    "SharedHistory",
    "add_assistant",
    "answer",
    "append_user",
    "checked_content",
    "continued_ids",
    "drop_unanswered_server_calls",
    "not_run",
    "repair_unanswered_calls",
    "reply_text",
]

COPY_ON_WRITE: Final = sys.implementation.name == "cpython" and bool(
    getattr(sys, "_is_gil_enabled", lambda: True)()
)
"""Whether a history may be handed to a request shared, copied only when changed while
someone still holds it (``TurnEngine.snapshot``): CPython's reference counts are exact."""


class SharedHistory:
    """Hands a history to requests copy-on-write (the turn engine's part for it).

    ``snapshot()`` returns the owner's own list, marked shared; ``_own()``,
    called before every change, copies it first when someone still holds it
    (a model that kept a request): a request's messages never change after it
    was sent, and a request nobody kept costs no copy. See ADR 0008.
    """

    __slots__ = ()

    _history: list[Message]
    _shared: bool

    def snapshot(self) -> list[Message]:
        """The history for the next request: a list that does not change afterwards."""
        if not COPY_ON_WRITE:
            return list(self._history)
        self._shared = True  # type: ignore[misc]  # the owner's slot
        return self._history

    def _own(self) -> list[Message]:
        """The history, safe to change in place."""
        history = self._history
        if self._shared:
            self._shared = False  # type: ignore[misc]  # the owner's slot
            # The slot, this local, the argument: any other holder keeps the list as sent.
            if sys.getrefcount(history) > 3:
                history = self._history = list(history)  # type: ignore[misc]  # the owner's slot
        return history


def checked_content(
    content: list[ContentBlock], earlier: set[str] | None = None
) -> tuple[list[ContentBlock], list[ToolUseBlock], tuple[str, ...]]:
    """The blocks to store, the client calls among them, and the repeated ids dropped.

    A ``tool_use`` (or ``server_tool_use``) id the response already used, or
    the paused message it continues (``earlier``), is dropped: the API
    rejects two results for one id. The list is the response's own when
    nothing is dropped (stored content is never changed in place).
    """
    if earlier is None and len(content) == 1:  # one block: nothing can repeat
        block = content[0]
        return content, [block] if isinstance(block, ToolUseBlock) else [], ()
    uses: list[ToolUseBlock] = []
    seen: set[str] | None = set(earlier) if earlier else None
    dropped: list[str] | None = None
    for block in content:
        if isinstance(block, ToolUseBlock | ServerToolUseBlock):
            if seen is None:
                seen = {block.id}
            elif block.id in seen:
                dropped = [*(dropped or []), block.id]
                continue
            else:
                seen.add(block.id)
            if isinstance(block, ToolUseBlock):
                uses.append(block)
    if dropped is None:
        return content, uses, ()
    kept: list[ContentBlock] = []
    seen_again: set[str] = set(earlier) if earlier else set()
    for block in content:
        if isinstance(block, ToolUseBlock | ServerToolUseBlock):
            if block.id in seen_again:
                continue
            seen_again.add(block.id)
        kept.append(block)
    return kept, uses, tuple(dropped)


def continued_ids(history: list[Message]) -> set[str] | None:
    """The call ids of the paused message a continuation joins (none may repeat)."""
    last = history[-1] if history else None
    if last is None or last.role != "assistant" or isinstance(last.content, str):
        return None
    return {b.id for b in last.content if isinstance(b, ToolUseBlock | ServerToolUseBlock)}


def not_run(call_id: str, text: str) -> ToolResultBlock:
    """The error result of a call that did not run, saying why."""
    return _build(
        ToolResultBlock,
        {"type": "tool_result", "tool_use_id": call_id, "content": text, "is_error": True},
    )


def answer(history: list[Message], uses: Sequence[ToolUseBlock], text: str) -> None:
    """Answer calls that will not run, each with an error result saying ``text``."""
    blocks: list[ContentBlock] = [not_run(block.id, text) for block in uses]
    history.append(_build(Message, {"role": "user", "content": blocks}))


def add_assistant(
    history: list[Message], content: list[ContentBlock], *, continuation: bool
) -> None:
    """Store a response's content; a continuation joins the paused message."""
    if continuation and history and history[-1].role == "assistant":
        last = history[-1]
        previous = list(last.content) if isinstance(last.content, list) else []
        history[-1] = _build(Message, {"role": "assistant", "content": [*previous, *content]})
    else:
        history.append(_build(Message, {"role": "assistant", "content": content}))


def append_user(history: list[Message], content: str | Sequence[Any]) -> None:
    """Add the user's message; after an interrupted turn, merge it into the trailing one.

    Raises:
        pydantic.ValidationError: ``content`` blocks are malformed.
    """
    if history and history[-1].role == "user":
        blocks: list[Any] = [TextBlock(text=content)] if isinstance(content, str) else [*content]
        last = history[-1]
        previous = [TextBlock(text=last.content)] if isinstance(last.content, str) else last.content
        history[-1] = Message.model_validate({"role": "user", "content": [*previous, *blocks]})
    elif type(content) is str:  # plain text needs no validation
        history.append(_build(Message, {"role": "user", "content": content}))
    else:
        history.append(Message.model_validate({"role": "user", "content": list(content)}))


def drop_unanswered_server_calls(history: list[Message]) -> None:
    """Remove server tool calls left without a result at the end of the history.

    A turn that ended on ``pause_turn`` (the continuation cap was reached, or
    it was cancelled while paused) may end with a ``server_tool_use`` whose
    result never came; the API rejects a new user message after it.
    """
    if not history or history[-1].role != "assistant":
        return
    last = history[-1]
    if isinstance(last.content, str):
        return
    answered = {b.tool_use_id for b in last.content if isinstance(b, ServerToolResultBlock)}
    kept = [
        b for b in last.content if not (isinstance(b, ServerToolUseBlock) and b.id not in answered)
    ]
    if len(kept) == len(last.content):
        return
    if kept:
        history[-1] = _build(Message, {"role": "assistant", "content": kept})
    else:
        history.pop()


def repair_unanswered_calls(history: list[Message], text: str) -> None:
    """Answer client calls left unanswered at the end (a state saved mid-call) with ``text``."""
    if not history or history[-1].role != "assistant":
        return
    last = history[-1].content
    if isinstance(last, list):
        unanswered = [b for b in last if isinstance(b, ToolUseBlock)]
        if unanswered:
            answer(history, unanswered, text)


def reply_text(history: list[Message], start: int) -> str:
    """The text of the last assistant message from ``start`` on (``""`` if there is none)."""
    for message in reversed(history[start:]):
        if message.role == "assistant":
            if isinstance(message.content, str):
                return message.content
            return "".join(b.text for b in message.content if isinstance(b, TextBlock))
    return ""
