"""Message content in the OpenTelemetry GenAI conventions' JSON shapes (opt-in capture).

Used only with ``Session(capture_content=True)``: nothing here runs otherwise.
A request and its response become the chat span's content attributes, each a
JSON string (the Python SDK has no structured span attributes; the
conventions say to serialize then):

=================================  ==========================================
attribute                          shape
=================================  ==========================================
``gen_ai.system_instructions``     ``[{"type": "text", "content": ...}]``
``gen_ai.input.messages``          ``[{"role": "user"|"assistant", "parts":
                                   [...]}]``, the history in the order sent
``gen_ai.output.messages``         ``[{"role": "assistant", "parts": [...],
                                   "finish_reason": ...}]``
``gen_ai.tool.definitions``        ``[{"type": "function", "name": ...,
                                   "description": ..., "parameters": ...}]``;
                                   server tools ``{"type": ..., "name": ...}``
=================================  ==========================================

Anthropic blocks map to the conventions' parts: ``text`` to ``text``,
``thinking`` to ``reasoning``, ``tool_use`` to ``tool_call``,
``tool_result`` to ``tool_call_response`` (the role stays ``user``, as the
API sent it), ``server_tool_use`` and ``*_tool_result`` to
``server_tool_call`` and ``server_tool_call_response``, images and documents
to ``blob`` / ``uri`` / ``file`` parts; any other block is kept as a generic
part with its own ``type``. Every string passes through a
:class:`~conjure_async._redact.Redactor` before it is set.

:class:`InputMessages` keeps ``gen_ai.input.messages`` incremental: each
message's converted and redacted JSON is kept, by the message's identity, as
long as the message is in the history sent, so a request costs the JSON of
its new messages and one join, not the whole history's conversion (the
value is byte-identical to :func:`content_attributes` building it whole).
"""

from __future__ import annotations

import json
from typing import Any

from conjure_async._redact import Redactor
from conjure_async.messages import Message, MessagesRequest, MessagesResponse

__all__ = ["InputMessages", "content_attributes", "finish_reason", "output_attributes"]

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}
"""Anthropic stop reasons that have a value in the conventions' ``FinishReason``."""

_MODALITY = {"image": "image", "document": "document"}


def finish_reason(stop_reason: str | None) -> str:
    """The conventions' finish reason for an Anthropic ``stop_reason`` (others kept as they are)."""
    if stop_reason is None:
        return ""  # as in gen_ai.response.finish_reasons
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def content_attributes(
    request: MessagesRequest, redactor: Redactor, joined: InputMessages | None = None
) -> dict[str, str]:
    """The request's system instructions, input messages and tool definitions.

    With ``joined`` (one per conversation), the input messages are joined from
    the fragments it keeps; the value is the same.
    """
    if joined is None:
        messages = _dump(_input_messages(request.messages), redactor)
    else:
        messages = joined.dump(request.messages, redactor)
    attributes = {"gen_ai.input.messages": messages}
    system = request.system
    if system:
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        attributes["gen_ai.system_instructions"] = _dump([_part(b) for b in blocks], redactor)
    if request.tools:
        attributes["gen_ai.tool.definitions"] = _dump(
            [_tool_definition(t) for t in request.tools], redactor
        )
    return attributes


def output_attributes(response: MessagesResponse, redactor: Redactor) -> dict[str, str]:
    """The response as the one output message (Anthropic answers one choice)."""
    message = {
        "role": response.role,
        "parts": [_part(block.to_wire()) for block in response.content],
        "finish_reason": finish_reason(response.stop_reason),
    }
    return {"gen_ai.output.messages": _dump([message], redactor)}


def _dump(value: Any, redactor: Redactor) -> str:
    return redactor.text(json.dumps(value, ensure_ascii=False, default=str))


def _input_messages(messages: list[Message]) -> list[dict[str, Any]]:
    return [_input_message(message) for message in messages]


def _input_message(message: Message) -> dict[str, Any]:
    # The message's cached wire JSON: one shape, however it was built.
    wire = json.loads(message.wire_json())
    content = wire.get("content", "")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return {"role": wire.get("role"), "parts": [_part(b) for b in blocks]}


_REPLACED_TAIL = 4
"""How many of the last messages are compared one by one (a continuation may replace them)."""

_JOINS = "[, ]"
"""The characters :func:`json.dumps` puts between a list's items and around them."""


class InputMessages:
    """``gen_ai.input.messages`` of a growing history, one redacted JSON fragment per message.

    The JSON of a list is ``"[" + ", ".join(items) + "]"``, and the redactor
    replaces exact strings and ``sk-ant-...`` shapes, neither of which can
    cross a ``", "`` unless a secret holds one of ``[, ]``: so each message is
    converted, dumped and redacted once, and a request's value is the join of
    its messages' fragments, byte for byte what dumping the whole list and
    redacting it gives. A redactor whose secrets hold such a character, or a
    subclass with its own ``text``, gets the whole list dumped each time.

    A history only grows or replaces one of its last few messages (a
    continuation, prompt caching's marked copies); its messages never change
    in place. Those last few are compared by identity, what precedes them
    as the request body's join compares it (a message equal to the one seen
    there counts as the same). Anything else (a restored session, a request
    cut at a compaction block, a history reset) keeps the fragments of the
    messages still in it, found by identity, and converts the others. Only
    the fragments of the last request's messages are kept: a message that
    left the history is let go. One instance serves one conversation (a
    session's telemetry keeps one).
    """

    __slots__ = ("_fragments", "_messages", "_parts", "_redactor", "_splits")

    def __init__(self) -> None:
        self._messages: list[Message] = []
        """The messages of the last request, in order (a list of its own)."""
        self._fragments: list[str] = []
        """Each message's redacted JSON."""
        self._parts: list[str] = []
        """``["[", fragment, ", ", fragment, ...]``: what the value joins."""
        self._redactor: Redactor | None = None
        self._splits = False

    def dump(self, messages: list[Message], redactor: Redactor) -> str:
        """The redacted JSON of ``messages`` in the conventions' shape (as a whole dump gives)."""
        if redactor is not self._redactor:
            self._redactor = redactor
            self._splits = type(redactor).text is Redactor.text and redactor.avoids(_JOINS)
            self.clear()
        if not self._splits:
            return _dump(_input_messages(messages), redactor)
        known = self._messages
        keep = min(len(known), len(messages))
        base = max(keep - _REPLACED_TAIL, 0)
        # Identity of the ends, then a C-speed pass over the rest (identity
        # first, element by element), as the request body's join does.
        if keep and (
            known[0] is not messages[0]
            or (base and known[base - 1] is not messages[base - 1])
            or known[:base] != messages[:base]
        ):
            base = 0  # not the history seen before: keep what is still in it
        else:
            while base < keep and known[base] is messages[base]:
                base += 1
        self._extend(messages, base, redactor)
        parts = self._parts
        parts.append("]")
        try:
            return "".join(parts) if len(parts) > 1 else "[]"
        finally:
            parts.pop()

    def clear(self) -> None:
        """Forget every fragment."""
        self._messages = []
        self._fragments = []
        self._parts = []

    def __len__(self) -> int:
        """How many messages' fragments are kept."""
        return len(self._messages)

    def _extend(self, messages: list[Message], base: int, redactor: Redactor) -> None:
        """Keep the first ``base`` messages' fragments; reuse the others' where still sent."""
        known, fragments = self._messages, self._fragments
        dropped = {id(m): (m, f) for m, f in zip(known[base:], fragments[base:], strict=True)}
        if dropped:
            del known[base:]
            del fragments[base:]
            del self._parts[2 * base :]
        for message in messages[base:]:
            found = dropped.get(id(message)) if dropped else None
            if found is not None and found[0] is message:
                self._append(message, found[1])
            else:
                self._append(message, self._fragment(message, redactor))

    def _append(self, message: Message, fragment: str) -> None:
        self._parts.append(", " if self._messages else "[")
        self._parts.append(fragment)
        self._messages.append(message)
        self._fragments.append(fragment)

    @staticmethod
    def _fragment(message: Message, redactor: Redactor) -> str:
        return _dump(_input_message(message), redactor)


def _part(block: dict[str, Any]) -> dict[str, Any]:
    """One Anthropic content block as a conventions message part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "content": block.get("text", "")}
    if kind == "thinking":
        return {"type": "reasoning", "content": block.get("thinking", "")}
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": block.get("id"),
            "name": block.get("name"),
            "arguments": block.get("input", {}),
        }
    if kind == "tool_result":
        return {
            "type": "tool_call_response",
            "id": block.get("tool_use_id"),
            "response": _tool_response(block.get("content", "")),
        }
    if kind == "server_tool_use":
        return {
            "type": "server_tool_call",
            "id": block.get("id"),
            "name": block.get("name"),
            "server_tool_call": {"type": block.get("name"), "arguments": block.get("input", {})},
        }
    if isinstance(kind, str) and kind.endswith("_tool_result"):
        return {
            "type": "server_tool_call_response",
            "id": block.get("tool_use_id"),
            "server_tool_call_response": {"type": kind, "content": block.get("content")},
        }
    if kind in _MODALITY and isinstance(block.get("source"), dict):
        return _media_part(_MODALITY[kind], block["source"])
    if kind == "redacted_thinking":
        return {"type": "reasoning", "content": ""}  # encrypted: nothing readable to record
    return dict(block) if isinstance(kind, str) else {"type": "unknown"}


def _tool_response(content: Any) -> Any:
    """A tool result's content: its text when it is all text, else its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [_part(b) for b in content if isinstance(b, dict)]
        if all(p.get("type") == "text" for p in parts):
            return "".join(str(p.get("content", "")) for p in parts)
        return parts
    return content


def _media_part(modality: str, source: dict[str, Any]) -> dict[str, Any]:
    kind = source.get("type")
    part: dict[str, Any] = {"modality": modality}
    if source.get("media_type"):
        part["mime_type"] = source["media_type"]
    if kind == "base64":
        return {"type": "blob", **part, "content": source.get("data", "")}
    if kind == "url":
        return {"type": "uri", **part, "uri": source.get("url", "")}
    if kind == "file":
        return {"type": "file", **part, "file_id": source.get("file_id", "")}
    if kind == "text":  # a plain-text document
        return {"type": "text", "content": source.get("data", "")}
    return {"type": modality, **part}


def _tool_definition(tool: dict[str, Any]) -> dict[str, Any]:
    """A request's tool entry: a client tool as a function, a server tool as it is named."""
    if "input_schema" in tool or tool.get("type") in (None, "custom"):
        definition: dict[str, Any] = {"type": "function", "name": tool.get("name", "")}
        if tool.get("description"):
            definition["description"] = tool["description"]
        if tool.get("input_schema") is not None:
            definition["parameters"] = tool["input_schema"]
        return definition
    return {"type": tool["type"], "name": tool.get("name", tool["type"])}
