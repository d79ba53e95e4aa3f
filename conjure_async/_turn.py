"""The turn engine's data: its phases, the actions it answers, and the state of a turn.

Everything here is plain data (no rules; :mod:`conjure_async._engine` has
them): what the engine says to do next (:data:`Action`), the tools it may
route to (:class:`ToolSpec`), and the turn in progress (:class:`Turn`) with
its JSON form (:func:`dump_turn`, :func:`load_turn`), so a turn can stop in
the middle and resume elsewhere.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from conjure_async._exceptions import SessionStateError
from conjure_async._schema import Check, compile_schema
from conjure_async.backends._base import ToolCall
from conjure_async.events import CreatedFile, Reply, ToolCallRecord
from conjure_async.messages import Message, ToolResultBlock, ToolUseBlock, Usage
from conjure_async.messages import _fast_construct as _build

__all__ = [
    "NO_REFUSALS",
    "SEND",
    "Action",
    "Continue",
    "Finished",
    "RecordData",
    "RunTools",
    "SendRequest",
    "StopReason",
    "Stopped",
    "ToolSpec",
    "Turn",
    "TurnPhase",
    "UsageSum",
    "compiled_check",
    "dump_turn",
    "file_key",
    "input_of",
    "load_engine_parts",
    "load_turn",
    "new_tool_call",
    "record_of",
    "replace_or_add",
]


class TurnPhase(enum.Enum):
    """Where the engine is: the states of one turn."""

    IDLE = "idle"
    """No turn is running; :meth:`TurnEngine.begin` starts one."""
    AWAITING_RESPONSE = "awaiting_response"
    """A request is out; :meth:`TurnEngine.on_response` takes the model's answer."""
    RUNNING_TOOLS = "running_tools"
    """Calls were handed out; :meth:`TurnEngine.on_result` takes each result."""
    CONTINUING = "continuing"
    """The API paused the turn; :meth:`TurnEngine.next_request` sends it back."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Calls wait for a decision; :meth:`TurnEngine.resolve` continues the turn."""


class StopReason(enum.Enum):
    """Why the engine stopped a turn before the model ended it."""

    MAX_ITERATIONS = "max_iterations"
    """The turn made ``max_iterations`` model calls and wanted another."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send a request built from :attr:`TurnEngine.history`; then call ``on_response``."""


@dataclass(slots=True)
class RunTools:
    """Run ``calls`` (routed by name); report each through ``on_result``.

    A call whose id is in ``refusals`` is not run: its result is an error
    with that text (unknown tool, invalid input); it still passes the
    session's ``after_tool_call`` hook, events and span like any call.
    Read-only by convention; not ``frozen`` because it is built once per
    model call and a frozen dataclass pays an ``object.__setattr__`` per field.
    """

    calls: tuple[ToolCall, ...]
    refusals: Mapping[str, str]
    approved: bool = False
    """The calls were approved by a person (:meth:`TurnEngine.resolve`): no hook asks again."""


@dataclass(frozen=True, slots=True)
class Continue:
    """The API paused a long turn (``pause_turn``); ``next_request`` sends it back."""

    pauses: int
    """How many times this turn has paused so far."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The turn is over; ``reply`` is its outcome."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Stopped:
    """The engine ended the turn at a limit; the history is consistent."""

    reason: StopReason
    limit: int


Action = SendRequest | RunTools | Continue | Finished | Stopped
"""What the engine says to do next."""

SEND: Final = SendRequest()
NO_REFUSALS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A client tool the engine may hand out: its name, backend kind and input schema."""

    name: str
    backend: str
    """The backend's ``kind``, named in events and records."""
    input_schema: dict[str, Any]


_COMPILED: dict[str, Check] = {}
_COMPILED_MAX: Final = 1024


def compiled_check(schema: dict[str, Any]) -> Check:
    """:func:`compile_schema` of ``schema``, shared by every engine whose tool has that schema.

    Sessions built per request offer the same tools again and again; one
    compiled check per distinct schema (keyed by its JSON) saves the
    compilation and the closures it makes, per session.
    """
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (the API would refuse it): no sharing
        return compile_schema(schema)
    check = _COMPILED.get(key)
    if check is None:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        check = _COMPILED[key] = compile_schema(schema)
    return check


@dataclass(slots=True)
class UsageSum:
    """Token counts summed cheaply (a pydantic ``Usage`` is built only when read)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_creation_input_tokens += usage.cache_creation_input_tokens or 0
        self.cache_read_input_tokens += usage.cache_read_input_tokens or 0

    def add_sum(self, other: UsageSum) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens

    def freeze(self) -> Usage:
        return Usage._fast(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens,
        )

    @classmethod
    def of(cls, usage: Usage) -> UsageSum:
        total = cls()
        total.add(usage)
        return total


_SET_ID, _SET_NAME, _SET_INPUT = (ToolCall.__dict__[f].__set__ for f in ("id", "name", "input"))


def new_tool_call(call_id: str, name: str, input: dict[str, Any]) -> ToolCall:
    """``ToolCall(call_id, name, input)``, built through its slots.

    A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``:
    three times slower, paid per call. A test compares the two.
    """
    call: ToolCall = object.__new__(ToolCall)
    _SET_ID(call, call_id)
    _SET_NAME(call, name)
    _SET_INPUT(call, input)
    return call


RecordData = tuple[str, str, dict[str, Any] | None, str, str, bool, int | None, int]
"""A client call's record while its turn runs: the fields of :class:`ToolCallRecord` in
order, then the index of the assistant message holding its ``tool_use`` block (``input``
``None``: the block's, as states saved by earlier versions have it)."""


def record_of(record: ToolCallRecord | RecordData, history: Sequence[Message]) -> ToolCallRecord:
    """The :class:`ToolCallRecord` of a record kept as :data:`RecordData` (or itself)."""
    if not isinstance(record, tuple):
        return record  # a server call's record, kept as built
    call_id, name, input, backend, output, is_error, exit_code, at = record
    if input is None:
        input = input_of(history[at], call_id) if 0 <= at < len(history) else {}
    return _build(
        ToolCallRecord,
        {
            "call_id": call_id,
            "name": name,
            "input": input,
            "backend": backend,
            "output": output,
            "is_error": is_error,
            "exit_code": exit_code,
        },
    )


def input_of(message: Message, call_id: str) -> dict[str, Any]:
    """The input of the ``tool_use`` block ``call_id`` in ``message`` (``{}`` if none)."""
    if not isinstance(message.content, str):
        for block in message.content:
            if isinstance(block, ToolUseBlock) and block.id == call_id:
                return block.input
    return {}


@dataclass(slots=True)
class Turn:
    """The state of the turn in progress."""

    start: int
    """Index of the turn's first message after the user's (its replies start there)."""
    iterations: int = 0
    pauses: int = 0
    continuation: bool = False
    """The next response continues the last assistant message (after a pause)."""
    usage: UsageSum = field(default_factory=UsageSum)
    records: list[ToolCallRecord | RecordData] = field(default_factory=list)
    """The turn's calls in call order (client calls as :data:`RecordData`)."""
    files: list[CreatedFile] = field(default_factory=list)
    server_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: tuple[ToolCall, ...] = ()
    """The calls handed out, in response order."""
    results: list[ToolResultBlock | None] = field(default_factory=list)
    """Their results so far, by position."""
    batch_records: list[ToolCallRecord | RecordData | None] = field(default_factory=list)
    """Their records so far, by position (the reply lists calls in call order)."""
    positions: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    """How many of ``calls`` have no result yet (deferred calls not counted)."""
    pending: list[int] = field(default_factory=list)
    """Positions of the calls deferred for approval (no result until decided)."""


def dump_turn(turn: Turn, phase: TurnPhase, history: Sequence[Message]) -> dict[str, Any]:
    """The turn in progress as JSON-able data (:func:`load_turn` reads it back)."""
    return {
        "phase": phase.value,
        "start": turn.start,
        "iterations": turn.iterations,
        "pauses": turn.pauses,
        "continuation": turn.continuation,
        "usage": turn.usage.freeze().to_wire(),
        "records": [record_of(r, history).model_dump(mode="json") for r in turn.records],
        "files": [f.model_dump(mode="json") for f in turn.files],
        "server_inputs": turn.server_inputs,
        "calls": [{"id": c.id, "name": c.name, "input": c.input} for c in turn.calls],
        "results": [None if r is None else r.to_wire() for r in turn.results],
        "batch_records": [
            None if r is None else record_of(r, history).model_dump(mode="json")
            for r in turn.batch_records
        ],
        "pending": list(turn.pending),
    }


def load_engine_parts(
    state: Mapping[str, Any] | str, version: int
) -> tuple[list[Message], Usage, list[CreatedFile], tuple[TurnPhase, Turn] | None]:
    """The parts of a ``TurnEngine.dump()``: history, usage, files, and the turn in progress.

    Raises:
        SessionStateError: The state is malformed (the message says where).
    """
    data: Any = json.loads(state) if isinstance(state, str) else state
    if not isinstance(data, Mapping) or data.get("version") != version:
        raise SessionStateError(f"invalid engine state: not a version {version} engine dump")
    try:
        messages = [Message.model_validate(m) for m in data["messages"]]
        usage = Usage.model_validate(data.get("usage", {}))
        files = [CreatedFile.model_validate(f) for f in data.get("files", [])]
        turn_data = data.get("turn")
        loaded = (
            None if turn_data is None else (TurnPhase(turn_data["phase"]), load_turn(turn_data))
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SessionStateError(f"invalid engine state: {exc}") from exc
    if loaded is not None and loaded[0] is TurnPhase.IDLE:
        raise SessionStateError("invalid engine state: a turn in phase idle")
    return messages, usage, files, loaded


def load_turn(data: Mapping[str, Any]) -> Turn:
    calls = tuple(ToolCall(c["id"], c["name"], dict(c["input"])) for c in data["calls"])
    results: list[ToolResultBlock | None] = [
        None if r is None else ToolResultBlock.model_validate(r) for r in data["results"]
    ]
    batch_records: list[ToolCallRecord | RecordData | None] = [
        None if r is None else _record_data(ToolCallRecord.model_validate(r))
        for r in data.get("batch_records", [None] * len(calls))
    ]
    if not len(results) == len(batch_records) == len(calls):
        raise ValueError("calls, results and their records differ in length")
    pending = [int(p) for p in data.get("pending", [])]
    if any(not 0 <= p < len(calls) or results[p] is not None for p in pending):
        raise ValueError("a pending call must be a call without a result")
    server_inputs = data.get("server_inputs", {})
    if not isinstance(server_inputs, dict):
        raise TypeError("server_inputs must be an object")
    return Turn(
        start=int(data["start"]),
        iterations=int(data["iterations"]),
        pauses=int(data["pauses"]),
        continuation=bool(data["continuation"]),
        usage=UsageSum.of(Usage.model_validate(data.get("usage", {}))),
        records=[ToolCallRecord.model_validate(r) for r in data.get("records", [])],
        files=[CreatedFile.model_validate(f) for f in data.get("files", [])],
        server_inputs=dict(server_inputs),
        calls=calls,
        results=results,
        batch_records=batch_records,
        positions={call.id: position for position, call in enumerate(calls)},
        missing=sum(r is None for r in results) - len(set(pending)),
        pending=sorted(set(pending)),
    )


def _record_data(record: ToolCallRecord) -> RecordData:
    return (
        record.call_id,
        record.name,
        record.input,
        record.backend,
        record.output,
        record.is_error,
        record.exit_code,
        -1,
    )


def file_key(created: CreatedFile) -> tuple[str, str]:
    return (created.source, created.file_id or created.path or created.name)


def replace_or_add(files: list[CreatedFile], created: CreatedFile, key: tuple[str, str]) -> bool:
    """Replace the file with ``key`` in ``files`` or append; return whether it was there."""
    for index, known in enumerate(files):
        if file_key(known) == key:
            files[index] = created
            return True
    files.append(created)
    return False
