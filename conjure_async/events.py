"""Typed, immutable events that stream out of a session.

``session.stream(text)`` yields these as they happen; ``session.chat(text)``
drains the same stream into a :class:`Reply`. Every event has a ``kind``
discriminator, so the union :data:`Event` validates from JSON (for example in
a client reading a server-sent event stream)::

    async for event in session.stream("Analyze app.log"):
        match event.kind:
            case "text_delta": print(event.text, end="")
            case "tool_started": print(f"-> {event.name}({event.input})")
            case "tool_finished": print(f"<- exit {event.exit_code}")
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypeVar

from conjure_async.messages import Usage, _fast_construct
from conjure_async.pricing import Cost

__all__ = [
    "Compacted",
    "ContextEdited",
    "CreatedFile",
    "EgressDecision",
    "ErrorEvent",
    "Event",
    "FileCreated",
    "ModelResponded",
    "Paused",
    "PendingCall",
    "Reply",
    "TextDelta",
    "ToolCallRecord",
    "ToolFinished",
    "ToolOutput",
    "ToolStarted",
    "TurnFinished",
    "event_adapter",
]

OutputT = TypeVar("OutputT", default=Any)
"""The type of :attr:`Reply.output` (``chat(..., output_type=...)``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def _fast(cls, **values: Any) -> Self:
        """Build from trusted values without validation (see :func:`_fast_construct`)."""
        return _fast_construct(cls, values)


class CreatedFile(_Frozen):
    """A file a tool created, on whichever backend ran it."""

    name: str
    """The file's name (no directories)."""
    source: str
    """The backend that created it (``local``, ``docker``, ``anthropic``, ``native``)."""
    path: str | None = None
    """Where the backend sees it (host path, container path), when it has one."""
    file_id: str | None = None
    """The Files API id, for files created in a hosted container."""
    size_bytes: int | None = None
    mime_type: str | None = None
    tool_use_id: str | None = None
    """The tool call that created it."""


class TextDelta(_Frozen):
    """A piece of the model's text, as it arrives."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class ToolStarted(_Frozen):
    """A tool call started (client tool or server tool)."""

    kind: Literal["tool_started"] = "tool_started"
    call_id: str
    """The ``tool_use`` (or ``server_tool_use``) id."""
    name: str
    """The tool name as the model called it."""
    input: dict[str, Any]
    """The arguments the tool runs with (after any hook rewrote them)."""
    backend: str
    """Which backend runs it."""


class ToolOutput(_Frozen):
    """A chunk of a tool's output while it runs."""

    kind: Literal["tool_output"] = "tool_output"
    call_id: str
    name: str
    stream: Literal["stdout", "stderr"] = "stdout"
    text: str


class ToolFinished(_Frozen):
    """A tool call finished; ``output`` is what the model receives."""

    kind: Literal["tool_finished"] = "tool_finished"
    call_id: str
    name: str
    backend: str
    output: str
    """The result text sent to the model (capped)."""
    is_error: bool = False
    exit_code: int | None = None
    """The command's exit code, for shell tools."""
    stdout: str | None = None
    """Standard output when the backend reports it separately (hosted)."""
    stderr: str | None = None
    timed_out: bool = False
    duration_s: float = 0.0


class FileCreated(_Frozen):
    """A tool created a file."""

    kind: Literal["file_created"] = "file_created"
    file: CreatedFile


class Paused(_Frozen):
    """The API paused a long turn (``pause_turn``); the session continues it."""

    kind: Literal["paused"] = "paused"
    count: int
    """How many times this turn has paused so far."""


class ModelResponded(_Frozen):
    """One model call finished."""

    kind: Literal["model_responded"] = "model_responded"
    stop_reason: str | None
    usage: Usage
    model: str = ""


class Compacted(_Frozen):
    """The API compacted the conversation (server-side compaction).

    The response began with a ``compaction`` block, now in the history;
    later requests are read from it on.
    """

    kind: Literal["compacted"] = "compacted"
    summary: str | None
    """The summary the API wrote (``None``: the compaction failed and changed nothing)."""


class ContextEdited(_Frozen):
    """The API cleared old context before the model read the request (context editing)."""

    kind: Literal["context_edited"] = "context_edited"
    edits: list[dict[str, Any]]
    """The applied edits as the API reports them (``type``, ``cleared_tool_uses``, ...)."""


class ToolCallRecord(_Frozen):
    """A tool call made during a chat, as listed in :class:`Reply`."""

    call_id: str
    name: str
    input: dict[str, Any]
    backend: str
    output: str
    is_error: bool = False
    exit_code: int | None = None


class PendingCall(_Frozen):
    """A tool call waiting for a person's decision (see ``Session.chat(approvals=...)``)."""

    call_id: str
    """The ``tool_use`` id: the key of its decision."""
    name: str
    """The tool the model called."""
    input: dict[str, Any]
    """The arguments the model gave (an approval may replace them)."""
    backend: str
    """Which backend would run it."""


class Reply(_Frozen, Generic[OutputT]):
    """The outcome of one ``chat``.

    Generic in the type of :attr:`output`: ``chat(..., output_type=Invoice)``
    returns a ``Reply[Invoice]``.
    """

    text: str
    """The final assistant text of the turn."""
    stop_reason: str | None
    """Why the turn ended: ``end_turn``, ``max_tokens``, ``stop_sequence``, ``refusal``..."""
    usage: Usage
    """Token usage summed over every model call of this chat."""
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    files: list[CreatedFile] = Field(default_factory=list)
    """Files created during this chat."""
    iterations: int = 0
    """Model calls made."""
    cost: Cost | None = None
    """Estimated cost of this chat's model calls (``None`` when no price is known for the model)."""
    pending: list[PendingCall] = Field(default_factory=list)
    """Tool calls waiting for approval: the turn stopped before them (empty when it ended).

    Answer each with ``session.chat(approvals={call_id: Approve() | Deny(reason) |
    Approve(input=...)})``; the turn continues from there.
    """
    output: OutputT | None = None
    """The validated typed output of ``chat(..., output_type=...)`` (``None`` without
    one, or while calls are pending)."""


class TurnFinished(_Frozen):
    """The chat's turn is over; carries the final :class:`Reply`."""

    kind: Literal["turn_finished"] = "turn_finished"
    reply: Reply


class EgressDecision(_Frozen):
    """A sandbox's program asked the session's egress proxy for a destination.

    One per tunnel (``CONNECT``) or plain-HTTP request, allowed or not; see
    ``docs/network-policy.md``. Carries header *names* only, never values.
    """

    kind: Literal["egress"] = "egress"
    host: str
    """The destination's host name or address, as the program asked for it."""
    port: int
    method: str
    """``CONNECT`` for a tunnel (HTTPS), else the plain-HTTP method."""
    allowed: bool
    intercepted: bool = False
    """The proxy ended TLS (or read the plain request) to inject headers."""
    headers: list[str] = Field(default_factory=list)
    """Names of the headers the proxy injects into each request."""
    reason: str | None = None
    """Why it was refused (what the program received as the status line)."""
    call_id: str | None = None
    """The tool call that was running when the decision was reported."""


class ErrorEvent(_Frozen):
    """The chat failed; the stream raises the matching exception right after."""

    kind: Literal["error"] = "error"
    error_type: str
    """The exception class name (e.g. ``MaxIterationsError``)."""
    message: str


Event: TypeAlias = Annotated[
    TextDelta
    | ToolStarted
    | ToolOutput
    | ToolFinished
    | FileCreated
    | Paused
    | ModelResponded
    | Compacted
    | ContextEdited
    | TurnFinished
    | EgressDecision
    | ErrorEvent,
    Field(discriminator="kind"),
]
"""Any event a session streams."""

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Validate an event from JSON: ``event_adapter.validate_json(data)``."""
