"""Pydantic models of the Anthropic Messages API shapes the api callback speaks.

Every model keeps fields it does not know (``extra="allow"``), so a request or
response round-trips through these models without losing anything, and a
content block of a type this version does not know is kept as
:class:`UnknownBlock`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag

ModelT = TypeVar("ModelT", bound=BaseModel)


class _Plan:
    """How to build one model class without validation (computed once per class)."""

    __slots__ = ("all_fields", "defaults", "extra", "mutable", "private", "size")

    def __init__(self, cls: type[BaseModel]) -> None:
        self.size = len(cls.model_fields)
        """How many fields the class has (given all, the keyword dict is the state)."""
        self.all_fields = set(cls.model_fields)
        """The fields set of an object given every field, shared by all of them.

        Sharing is safe: pydantic only ever adds a field name to it (setting
        an attribute), and every name is in it already; ``model_copy``
        copies it first. One set less per object (216 bytes, and one object
        less for the garbage collector to visit).
        """
        self.defaults: dict[str, Any] = {}
        """Immutable defaults, shared."""
        self.mutable: dict[str, type] = {}
        """Fields whose default is a fresh list, dict or set per object."""
        for name, field in cls.model_fields.items():
            if field.is_required():
                continue
            value = field.get_default(call_default_factory=True)
            if isinstance(value, list | dict | set):
                self.mutable[name] = type(value)
            else:
                self.defaults[name] = value
        self.extra = cls.model_config.get("extra") == "allow"
        self.private: dict[str, Any] | None = None
        """Private attribute defaults (none for a class that makes them when needed)."""
        if not getattr(cls, "_lazy_private", False):
            self.private = {
                name: attr.get_default() for name, attr in cls.__private_attributes__.items()
            } or None


_PLANS: dict[type[BaseModel], _Plan] = {}
# The slots pydantic 2 keeps every model's state in, written directly (a
# descriptor's __set__ is cheaper than object.__setattr__ by name).
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _fast_construct(cls: type[ModelT], values: dict[str, Any]) -> ModelT:
    """Build a model from trusted ``values`` without validation (the loop's hot path).

    ``values`` becomes the object's state: pass a fresh dict (``_fast(**values)``
    does).

    ``model_construct`` costs about 10 µs; this costs about 1 µs. Only the
    library calls it, with values of the declared types; unknown fields are
    not allowed. It writes pydantic 2's internal slots, so
    ``tests/test_messages.py`` pins it against validation for every model
    the loop builds.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    if len(values) == plan.size:
        state = values  # every field given: the caller's fresh dict is the state
        fields_set = plan.all_fields
    else:
        fields_set = set(values)
        state = plan.defaults.copy()
        state.update(values)
        for name, kind in plan.mutable.items():
            if name not in values:
                state[name] = kind()  # no mutable default shared between objects
    obj = object.__new__(cls)
    _set_dict(obj, state)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, {} if plan.extra else None)
    _set_private(obj, plan.private.copy() if plan.private else None)
    return obj


class _Wire(BaseModel):
    """Base of every wire model: unknown fields are kept, values re-validated."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @classmethod
    def _fast(cls, **values: Any) -> Self:
        """Build from trusted values without validation (see :func:`_fast_construct`)."""
        return _fast_construct(cls, values)

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON-able dict the API expects (``None`` fields dropped)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class TextBlock(_Wire):
    """A ``text`` content block."""

    type: Literal["text"] = "text"
    text: str
    """The text."""


class ThinkingBlock(_Wire):
    """A ``thinking`` content block (extended thinking)."""

    type: Literal["thinking"] = "thinking"
    thinking: str = ""
    signature: str | None = None


class ToolUseBlock(_Wire):
    """A client ``tool_use`` block: the model asks the session to run a tool."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    """The id that the matching ``tool_result`` must carry."""
    name: str
    """The tool's name."""
    input: dict[str, Any] = Field(default_factory=dict)
    """The arguments, as a JSON object."""


class ToolResultBlock(_Wire):
    """A ``tool_result`` block, sent in the user turn after ``tool_use``."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[dict[str, Any]] = ""
    is_error: bool | None = None


class ServerToolUseBlock(_Wire):
    """A ``server_tool_use`` block: a tool that ran on Anthropic's side."""

    type: Literal["server_tool_use"] = "server_tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ServerToolResultBlock(_Wire):
    """Any ``*_tool_result`` block of a server tool (code execution, web search...)."""

    type: str
    tool_use_id: str
    content: Any = None


class UnknownBlock(_Wire):
    """A content block of a type this version does not model; kept as-is."""

    type: str


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in _KNOWN:
        return str(kind)
    if isinstance(kind, str) and kind.endswith("_tool_result"):
        return "server_tool_result"
    return "unknown"


_KNOWN = {"text", "thinking", "tool_use", "tool_result", "server_tool_use"}

ContentBlock: TypeAlias = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ServerToolUseBlock, Tag("server_tool_use")]
    | Annotated[ServerToolResultBlock, Tag("server_tool_result")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(_block_tag),
]
"""A content block: one of the known types, or :class:`UnknownBlock`."""


class Message(_Wire):
    """One message of the conversation.

    Treat a message as immutable once it is in a session's history: its JSON
    is computed once and reused by every later request (see
    :meth:`MessagesRequest.body_json`).
    """

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]
    _json: bytes | None = PrivateAttr(default=None)
    _lazy_private: ClassVar[bool] = True
    """Built without validation, a message gets its private dict when its JSON is cached."""

    def __eq__(self, other: object) -> bool:
        """Equal role, content and extra fields (a cached JSON does not count)."""
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.role == other.role
            and self.content == other.content
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment] # mutable, like every pydantic model

    def wire_json(self) -> bytes:
        """The message's JSON (as sent to the API), computed once."""
        # The private-attribute dict is read directly: going through pydantic's
        # __getattr__ costs microseconds, paid per message per request.
        private = self.__pydantic_private__
        cached = private.get("_json") if private is not None else None
        if cached is None:
            cached = json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()
            if private is None:
                object.__setattr__(self, "__pydantic_private__", {"_json": cached})
            else:
                private["_json"] = cached
        return cached


class ToolDefinition(_Wire):
    """A client tool offered to the model."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class Usage(_Wire):
    """Token usage of one model call (or a sum of several)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage.model_construct(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=(self.cache_creation_input_tokens or 0)
            + (other.cache_creation_input_tokens or 0),
            cache_read_input_tokens=(self.cache_read_input_tokens or 0)
            + (other.cache_read_input_tokens or 0),
        )


class MessagesRequest(_Wire):
    """A ``POST /v1/messages`` request body, built by the session.

    ``tools`` holds client tool definitions as well as server tool entries
    (e.g. ``{"type": "code_execution_20250825", "name": "code_execution"}``).
    ``betas`` is not part of the body: it lists the ``anthropic-beta`` values
    the backends need; HTTP model clients send it as a header.
    """

    model: str
    max_tokens: int
    messages: list[Message]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None
    stream: bool | None = None
    betas: list[str] = Field(default_factory=lambda: [], exclude=True)  # noqa: PIE807 - a lambda keeps model_construct fast (pydantic inspects builtins slowly)
    _joined: JoinedMessages | None = PrivateAttr(default=None)

    def join_with(self, joined: JoinedMessages) -> None:
        """Let :meth:`body_json` take the history's JSON from ``joined`` (the session's)."""
        private = self.__pydantic_private__
        if private is None:
            object.__setattr__(self, "__pydantic_private__", {"_joined": joined})
        else:
            private["_joined"] = joined

    def body(self) -> dict[str, Any]:
        """Return the JSON body to send (without ``betas``)."""
        return self.to_wire()

    def body_json(self, **overrides: Any) -> bytes:
        """Return the JSON body as bytes, with top-level ``overrides`` applied.

        Each message's JSON is cached on the message, so the cost of a request
        does not grow with re-serializing the history. With a
        :class:`JoinedMessages` attached (:meth:`join_with`; a session attaches
        its own), the history's joined JSON is kept as an append-only prefix
        too: a request costs the new messages and one copy of the bytes.
        ``None`` overrides remove the key.
        """
        head = self.model_dump(mode="json", exclude_none=True, exclude={"messages"})
        for key, value in overrides.items():
            if value is None:
                head.pop(key, None)
            else:
                head[key] = value
        private = self.__pydantic_private__
        joined = private.get("_joined") if private is not None else None
        if isinstance(joined, JoinedMessages):
            messages: bytes | bytearray = joined.join(self.messages)
        else:
            messages = b",".join(m.wire_json() for m in self.messages)
        head_json = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()
        tail = b"," + head_json[1:] if head else b"}"
        return b"".join((b'{"messages":[', messages, b"]", tail))


_REPLACED_TAIL = 4
"""How far back :class:`JoinedMessages` looks for the first message that changed."""


class JoinedMessages:
    """The JSON of a growing message list, joined once: an append-only prefix.

    :meth:`join` returns the comma-joined wire JSON of a list. The messages
    joined so far are remembered; a list that starts with them costs only
    the JSON of its new messages. A history only grows or replaces one of
    its last few messages (a continuation merged into the last; a prompt-caching
    breakpoint moved on); anything else is joined again.
    One instance serves one conversation (a session keeps one).
    """

    __slots__ = ("_data", "_ends", "_messages")

    def __init__(self) -> None:
        self._messages: list[Message] = []
        self._ends: list[int] = []
        self._data = bytearray()

    def join(self, messages: list[Message]) -> bytearray:
        """The joined JSON of ``messages`` (valid until the next call; copy to keep it)."""
        known = self._messages
        keep = min(len(known), len(messages))
        # List equality tests identity first, element by element, in C: a
        # few nanoseconds per message; the same messages are the common case.
        # The last few may have been replaced (a continuation merged into the
        # last message; prompt-caching breakpoints moved on): they are compared
        # one by one, after one pass over what precedes them.
        base = max(keep - _REPLACED_TAIL, 0)
        if known[:base] == messages[:base]:
            while base < keep and (known[base] is messages[base] or known[base] == messages[base]):
                base += 1
        else:
            base = 0
        keep = base
        if keep < len(known):
            del known[keep:]
            del self._ends[keep:]
            del self._data[self._ends[-1] if keep else 0 :]
        data, ends = self._data, self._ends
        for message in messages[keep:]:
            if data:
                data += b","
            data += message.wire_json()
            ends.append(len(data))
            known.append(message)
        return data


class MessagesResponse(_Wire):
    """A Messages API response (``type: "message"``)."""

    id: str = ""
    type: str = "message"
    role: Literal["assistant"] = "assistant"
    model: str = ""
    content: list[ContentBlock] = Field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    container: dict[str, Any] | None = None
    usage: Usage = Field(default_factory=Usage)

    @property
    def text(self) -> str:
        """The concatenated text of the response's text blocks."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        """The client tool calls, in order."""
        return [b for b in self.content if isinstance(b, ToolUseBlock)]
