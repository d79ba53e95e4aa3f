"""Prompt caching: where a session puts ``cache_control`` breakpoints in each request.

The API caches a request's prefix up to each block marked with
``cache_control`` (at most 4, in render order tools → system → messages);
a later request whose prefix is identical up to a marked block reads it from
the cache at a tenth of the input price. :class:`PromptCaching` says where
the session puts its breakpoints; :class:`CacheMarker` puts them, per
session, without touching the history: the marked messages are copies,
kept while they stay marked, so each is serialized once.

The default placement: the last tool, the end of the system prompt, the
last message (the growing conversation), and the previous request's last
message, so that a step adding more than the API's 20-block lookback (a
response with many parallel tool calls) still reads what the previous
request wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from conjure_async._history_scan import has_mark
from conjure_async.messages import Message, MessagesRequest, TextBlock
from conjure_async.messages import _fast_construct as _build

__all__ = ["MAX_BREAKPOINTS", "CacheMarker", "PromptCaching"]

MAX_BREAKPOINTS: Final = 4
"""Blocks with ``cache_control`` one request may have."""

_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})
"""Block types the API refuses a breakpoint on (they are cached inside the prefix)."""


@dataclass(frozen=True, slots=True)
class PromptCaching:
    """Where a session puts prompt-caching breakpoints, and how long entries live.

    Sessions over :class:`~conjure_async.models.AnthropicModel` or
    :class:`~conjure_async.models.AnthropicSDKModel` cache with
    ``PromptCaching()`` unless told otherwise; other models (a
    ``ScriptedModel``, a plain callback) get breakpoints only when the
    session is given ``prompt_caching=PromptCaching(...)``::

        Session(backend, model=model, prompt_caching=PromptCaching(ttl="1h"))
        Session(backend, model=model, prompt_caching=None)   # no breakpoints

    Args:
        ttl: The cache lifetime, ``"5m"`` (refreshed free on each hit) or
            ``"1h"`` (writes cost 2x input instead of 1.25x).
        tools: Mark the last tool definition.
        system: Mark the end of the system prompt.
        messages: Breakpoints in the conversation (0 to 4): the last message,
            then the previous request's last message, then the one before.

    Raises:
        ValueError: An unknown ``ttl``, or more than 4 breakpoints in all.
    """

    ttl: Literal["5m", "1h"] = "5m"
    tools: bool = True
    system: bool = True
    messages: int = 2

    def __post_init__(self) -> None:
        if self.ttl not in ("5m", "1h"):
            raise ValueError(f"PromptCaching ttl must be '5m' or '1h', not {self.ttl!r}")
        if not 0 <= self.messages <= MAX_BREAKPOINTS:
            raise ValueError(f"PromptCaching messages must be 0 to {MAX_BREAKPOINTS}")
        if self.tools + self.system + self.messages > MAX_BREAKPOINTS:
            raise ValueError(
                f"PromptCaching asks for {self.tools + self.system + self.messages} "
                f"breakpoints; the API allows {MAX_BREAKPOINTS}"
            )

    @property
    def cache_control(self) -> dict[str, str]:
        """The ``cache_control`` object put on each marked block."""
        return {"type": "ephemeral", "ttl": self.ttl}


def _markable(block: Any) -> bool:
    kind = block.get("type") if isinstance(block, dict) else getattr(block, "type", None)
    if kind in _UNMARKABLE:
        return False
    if kind == "text":
        text = block.get("text") if isinstance(block, dict) else getattr(block, "text", "")
        return bool(text)
    return True


def _marks_in(message: Message) -> int:
    if isinstance(message.content, str):
        return 0
    return sum(1 for block in message.content if has_mark(block))


def _marks_around(request: MessagesRequest) -> int:
    """The breakpoints on the request's tool definitions and system blocks."""
    count = sum(1 for tool in request.tools or () if has_mark(tool))
    if isinstance(request.system, list):
        count += sum(1 for block in request.system if has_mark(block))
    return count


def _system_open(system: Any) -> bool:
    """Whether marking the end of ``system`` adds a breakpoint (its end is not marked already)."""
    if isinstance(system, str):
        return bool(system)
    for block in reversed(system or ()):
        if has_mark(block):
            return False
        if _markable(block):
            return True
    return False


class CacheMarker:
    """Puts one session's breakpoints into its requests (the request, never the history).

    Args:
        settings: Where the breakpoints go.
    """

    __slots__ = ("_cache_control", "_marked", "_marker_json", "_system", "_tool", "settings")

    def __init__(self, settings: PromptCaching) -> None:
        self.settings = settings
        self._cache_control = settings.cache_control
        control = json.dumps(self._cache_control, separators=(",", ":"))
        self._marker_json = f',"cache_control":{control}'.encode()
        """What a marked block's JSON gains before its closing brace."""
        self._marked: dict[int, tuple[Message, Message]] = {}
        """Marked copies of the messages marked in the last request, by the original's id."""
        self._tool: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._system: tuple[Any, list[dict[str, Any]]] | None = None

    def mark(self, request: MessagesRequest, *, message_marks: int | None = None) -> None:
        """Add the breakpoints to ``request`` (built for this call: changed in place).

        Every breakpoint the request carries already (on tools, system
        blocks, any message) counts toward the API's limit of 4: the
        session's own give way, oldest message first, then tools, then
        system. ``message_marks`` is how many the messages carry, when the
        caller keeps count (a session does, as its history grows); ``None``
        counts them here.
        """
        settings = self.settings
        messages = request.messages
        if message_marks is None:
            message_marks = sum(_marks_in(message) for message in messages)
        room = MAX_BREAKPOINTS - message_marks - _marks_around(request)
        tools = request.tools
        want_tools = bool(settings.tools and tools and not has_mark(tools[-1]))
        want_system = bool(settings.system and request.system) and _system_open(request.system)
        candidates = self._candidates(messages) if settings.messages and room > 0 else []
        while want_tools + want_system + len(candidates) > max(room, 0):
            if candidates:
                candidates.pop()  # the oldest message breakpoint goes first
            elif want_tools:
                want_tools = False
            else:
                want_system = False
        if want_tools:
            self._mark_tools(request)
        if want_system:
            self._mark_system(request)
        marked: dict[int, tuple[Message, Message]] = {}
        for index, original, copy in candidates:
            marked[id(original)] = (original, copy)
            messages[index] = copy
        self._marked = marked

    def _candidates(self, messages: list[Message]) -> list[tuple[int, Message, Message]]:
        """The messages to mark, newest first, with their marked copies (kept while marked)."""
        candidates: list[tuple[int, Message, Message]] = []
        for index in self._message_positions(messages):
            original = messages[index]
            known = self._marked.get(id(original))
            copy = known[1] if known is not None and known[0] is original else self._copy(original)
            if copy is not None:
                candidates.append((index, original, copy))
        return candidates

    def _message_positions(self, messages: list[Message]) -> list[int]:
        """The messages to mark, newest first: the last, then earlier request tails."""
        if not messages:
            return []
        wanted = self.settings.messages
        positions = [len(messages) - 1]
        index = len(messages) - 2
        while len(positions) < wanted and index >= 0:
            if messages[index].role == "user":
                positions.append(index)
            index -= 1
        return positions

    def _mark_tools(self, request: MessagesRequest) -> None:
        tools = list(request.tools or ())
        last = tools[-1]
        if has_mark(last):
            return
        known = self._tool
        if known is None or known[0] is not last:
            known = self._tool = (last, {**last, "cache_control": self._cache_control})
        tools[-1] = known[1]
        request.tools = tools

    def _mark_system(self, request: MessagesRequest) -> None:
        system = request.system
        known = self._system
        if known is not None and known[0] is system:
            request.system = known[1]
            return
        if isinstance(system, str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": system}]
        else:
            blocks = list(system or ())
        for position in range(len(blocks) - 1, -1, -1):
            if has_mark(blocks[position]):
                return
            if _markable(blocks[position]):
                blocks[position] = {**blocks[position], "cache_control": self._cache_control}
                break
        else:
            return
        self._system = (system, blocks)
        request.system = blocks

    def _copy(self, message: Message) -> Message | None:
        """A copy of ``message`` whose last markable block carries the breakpoint.

        Its JSON is the original's with the marker spliced in when the marked
        block ends the message (the common case): no second serialization.
        """
        content = message.content
        cache_control = self._cache_control
        if isinstance(content, str):
            if not content:
                return None
            block = TextBlock._fast(type="text", text=content)
            object.__setattr__(block, "__pydantic_extra__", {"cache_control": cache_control})
            return _build(Message, {"role": message.role, "content": [block]})
        blocks = list(content)
        for position in range(len(blocks) - 1, -1, -1):
            candidate = blocks[position]
            if has_mark(candidate):
                return None
            if _markable(candidate):
                blocks[position] = _marked(candidate, cache_control)
                break
        else:
            return None
        copy = _build(Message, {"role": message.role, "content": blocks})
        if message.__pydantic_extra__:
            object.__setattr__(copy, "__pydantic_extra__", dict(message.__pydantic_extra__))
        elif position == len(blocks) - 1:
            original = message.wire_json()
            if original.endswith(b"}]}"):
                spliced = original[:-3] + self._marker_json + original[-3:]
                object.__setattr__(copy, "__pydantic_private__", {"_json": spliced})
        return copy


def _marked(block: Any, cache_control: dict[str, str]) -> Any:
    """A copy of ``block`` with ``cache_control`` (built without validation or deep copies)."""
    copy = _build(type(block), dict(block.__dict__))
    extra = dict(block.__pydantic_extra__ or {})
    extra["cache_control"] = cache_control
    object.__setattr__(copy, "__pydantic_extra__", extra)
    return copy
