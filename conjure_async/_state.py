"""The session's saved state: what :meth:`Session.dump_state` writes and ``restore`` reads.

A state is JSON: ``version``, ``session_id``, ``model_name``, the history
(``messages``), ``usage``, created ``files``, each backend's own state, and
(optional) the ``turn`` in progress or stopped for approvals, as the turn
engine dumps it.
:func:`parse_state` checks it field by field; any problem is a
:class:`SessionStateError` saying where, never a crash deeper in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from conjure_async._exceptions import SessionStateError
from conjure_async._turn import TurnPhase, load_turn
from conjure_async.events import CreatedFile
from conjure_async.messages import Message, Usage

__all__ = ["STATE_VERSION", "ParsedState", "parse_state"]

STATE_VERSION: Final = 1
_MAX_STATE_DEPTH = 200
"""Deepest JSON nesting a restored state may have (far beyond real content blocks)."""


@dataclass(frozen=True, slots=True)
class ParsedState:
    """A checked session state."""

    session_id: str | None
    model_name: str | None
    messages: list[Message]
    usage: Usage
    files: list[CreatedFile]
    backends: list[tuple[str, dict[str, Any]]]
    meter: Any = None
    """The usage meter's totals (cost, requests), as ``Meter.dump`` wrote them."""
    turn: dict[str, Any] | None = None
    """The turn in progress or awaiting approval (the engine's dump), if any."""


def parse_state(state: Any) -> ParsedState:
    """Check a dumped state field by field; any problem is a :class:`SessionStateError`."""

    def bad(what: str) -> SessionStateError:
        return SessionStateError(f"invalid session state: {what}")

    if isinstance(state, str | bytes):
        try:
            state = json.loads(state)
        except RecursionError:
            raise bad("the JSON is nested too deeply") from None
        except ValueError as exc:
            raise bad(f"not JSON ({exc})") from None
    if not isinstance(state, dict):
        raise bad(f"expected a JSON object, got {type(state).__name__}")
    if _depth_exceeds(state, _MAX_STATE_DEPTH):
        raise bad(f"nested deeper than {_MAX_STATE_DEPTH} levels")
    if state.get("version") != STATE_VERSION:
        raise bad(f"unsupported state version {state.get('version')!r} (expected {STATE_VERSION})")
    optional_text: dict[str, str | None] = {}
    for key in ("session_id", "model_name"):
        value = state.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"{key} must be a string, not {type(value).__name__}")
        optional_text[key] = value
    raw_messages, raw_files, raw_backends = (
        state.get("messages"),
        state.get("files", []),
        state.get("backends", []),
    )
    for key, value in (
        ("messages", raw_messages),
        ("files", raw_files),
        ("backends", raw_backends),
    ):
        if not isinstance(value, list):
            raise bad(f"{key} must be a list, not {type(value).__name__}")
    assert isinstance(raw_messages, list)
    assert isinstance(raw_files, list)
    assert isinstance(raw_backends, list)
    try:
        messages = [Message.model_validate(m) for m in raw_messages]
    except ValueError as exc:
        raise bad(f"messages: {_first_line(exc)}") from None
    try:
        usage = Usage.model_validate(state.get("usage", {}))
    except ValueError as exc:
        raise bad(f"usage: {_first_line(exc)}") from None
    try:
        files = [CreatedFile.model_validate(f) for f in raw_files]
    except ValueError as exc:
        raise bad(f"files: {_first_line(exc)}") from None
    backends: list[tuple[str, dict[str, Any]]] = []
    for index, saved in enumerate(raw_backends):
        if not isinstance(saved, dict) or not isinstance(saved.get("kind"), str):
            raise bad(f"backends[{index}] must be an object with a string 'kind'")
        backend_state = saved.get("state") or {}
        if not isinstance(backend_state, dict):
            raise bad(
                f"backends[{index}] ({saved['kind']}): the backend state must be an object, "
                f"not {type(backend_state).__name__}"
            )
        backends.append((saved["kind"], backend_state))
    turn = state.get("turn")
    if turn is not None:
        if not isinstance(turn, dict):
            raise bad(f"turn must be an object, not {type(turn).__name__}")
        try:
            load_turn(turn)  # checked now: a bad turn is this error, not a crash later
            TurnPhase(turn["phase"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"turn: {_first_line(exc)}") from None
    return ParsedState(
        session_id=optional_text["session_id"],
        model_name=optional_text["model_name"],
        messages=messages,
        usage=usage,
        files=files,
        backends=backends,
        meter=state.get("meter"),
        turn=turn,
    )


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON data nests deeper than ``limit`` (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _first_line(exc: BaseException) -> str:
    """A pydantic error's summary, bounded (validation text can quote large input)."""
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."
