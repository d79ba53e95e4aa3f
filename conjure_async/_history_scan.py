"""What a session's requests need from its history, kept up to date as the history grows.

:class:`HistoryScan` counts, once per message, the blocks carrying a
``cache_control`` of the user's own and finds the ``compaction`` blocks. A
history only grows or replaces one of its last few messages (a continuation
merged into the last one), so a request costs the scan of its new messages,
not of the whole history; a history that changed otherwise (a restored
session's) is scanned again.

:meth:`HistoryScan.shape` is what the session does with it, before each
request is sent:

1. With compaction on, drop what precedes the last successful ``compaction``
   block: the API ignores it (its documentation lets a client "drop the
   compacted messages and only include the compaction block onwards"). The
   request then starts with the assistant message holding the block, or a
   copy of it from the block on; the history keeps everything.
2. Put the session's breakpoints where the API's limit of 4 leaves room,
   counting every breakpoint of the user's own the request carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from conjure_async.messages import Message, MessagesRequest
from conjure_async.messages import _fast_construct as _build

if TYPE_CHECKING:
    from conjure_async._caching import CacheMarker

__all__ = ["HistoryScan", "has_mark"]

_REPLACED_TAIL: Final = 4
"""How many of the last messages are scanned again (a continuation may have replaced them)."""


def has_mark(block: Any) -> bool:
    """Whether a block (a dict or a wire model) carries a ``cache_control``."""
    if isinstance(block, dict):
        return block.get("cache_control") is not None
    extra = getattr(block, "__pydantic_extra__", None)
    return isinstance(extra, dict) and extra.get("cache_control") is not None


def _summary_at(block: Any) -> bool:
    """A successful ``compaction`` block (a failed one, ``content: null``, changes nothing)."""
    if isinstance(block, dict):
        return block.get("type") == "compaction" and block.get("content") is not None
    return (
        getattr(block, "type", None) == "compaction" and getattr(block, "content", None) is not None
    )


class HistoryScan:
    """One session's history, scanned incrementally: user breakpoints and compaction blocks."""

    __slots__ = ("_cuts", "_marks", "_messages", "_trimmed")

    def __init__(self) -> None:
        self._messages: list[Message] = []
        """The messages scanned (compared by identity)."""
        self._marks: list[int] = []
        """Breakpoints in the messages up to and including each one (a running total)."""
        self._cuts: list[tuple[int, int]] = []
        """``(message, block)`` of each message's last successful compaction block."""
        self._trimmed: tuple[Message, int, Message] | None = None
        """The message the last cut falls inside, the block index, and its copy from there on."""

    def update(self, messages: list[Message]) -> None:
        """Scan what changed since the last call: the new messages and the last few."""
        known = self._messages
        keep = min(len(known), len(messages))
        base = max(keep - _REPLACED_TAIL, 0)
        if base and (known[base - 1] is not messages[base - 1] or known[0] is not messages[0]):
            base = 0  # not the history scanned before: scan it all
        while base < keep and known[base] is messages[base]:
            base += 1
        if base < len(known):
            del known[base:]
            del self._marks[base:]
            cuts = self._cuts
            while cuts and cuts[-1][0] >= base:
                cuts.pop()
        marks = self._marks
        total = marks[-1] if marks else 0
        for index in range(base, len(messages)):
            message = messages[index]
            content = message.content
            if not isinstance(content, str):
                cut = -1
                for position, block in enumerate(content):
                    if has_mark(block):
                        total += 1
                    if _summary_at(block):
                        cut = position
                if cut >= 0:
                    self._cuts.append((index, cut))
            known.append(message)
            marks.append(total)

    @property
    def cut(self) -> tuple[int, int] | None:
        """``(message, block)`` of the last successful compaction block, or ``None``."""
        return self._cuts[-1] if self._cuts else None

    def marks_from(self, index: int, block: int = 0) -> int:
        """The user's breakpoints in the scanned messages from ``[index].content[block]`` on."""
        marks = self._marks
        if not marks:
            return 0
        count = marks[-1] - (marks[index - 1] if index else 0)
        if block:
            content = self._messages[index].content
            if not isinstance(content, str):
                count -= sum(1 for b in content[:block] if has_mark(b))
        return count

    def _from_block(self, message: Message, block: int) -> Message:
        """A copy of ``message`` from block ``block`` on (the same copy while it is needed)."""
        known = self._trimmed
        if known is not None and known[0] is message and known[1] == block:
            return known[2]
        content = message.content
        assert not isinstance(content, str)
        copy = _build(Message, {"role": message.role, "content": list(content[block:])})
        if message.__pydantic_extra__:
            object.__setattr__(copy, "__pydantic_extra__", dict(message.__pydantic_extra__))
        self._trimmed = (message, block, copy)
        return copy

    def shape(
        self, request: MessagesRequest, marker: CacheMarker | None, *, compacted: bool
    ) -> None:
        """Drop what the last compaction made unread (``compacted``), then add the breakpoints.

        ``request`` is built for this call and changed in place; its message
        list is replaced, never changed, so the history is untouched.
        """
        if marker is None and not compacted:
            return
        messages = request.messages
        self.update(messages)
        start = (0, 0)
        if compacted and self._cuts:
            start = index, block = self._cuts[-1]
            first = messages[index] if not block else self._from_block(messages[index], block)
            if index or block:
                request.messages = [first, *messages[index + 1 :]]
        if marker is not None:
            marker.mark(request, message_marks=self.marks_from(*start))
