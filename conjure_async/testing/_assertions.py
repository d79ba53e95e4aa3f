"""Helpers to assert on event sequences."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import Any

from conjure_async.events import Event

__all__ = ["DEFAULT_IGNORED", "assert_events", "collect", "summarize"]

DEFAULT_IGNORED = frozenset({"text_delta", "tool_output", "model_responded"})
"""Event kinds :func:`assert_events` skips unless asked to keep them."""


async def collect(events: AsyncIterable[Event]) -> list[Event]:
    """Drain an event stream (e.g. ``session.stream(...)``) into a list."""
    return [event async for event in events]


def summarize(events: Iterable[Event], ignore: Iterable[str] = DEFAULT_IGNORED) -> list[str]:
    """One short line per event: ``tool_started bash_tool``, ``turn_finished end_turn``..."""
    skipped = set(ignore)
    lines: list[str] = []
    for event in events:
        if event.kind in skipped:
            continue
        match event.kind:
            case "tool_started" | "tool_output":
                lines.append(f"{event.kind} {event.name}")
            case "tool_finished":
                status = "error" if event.is_error else "ok"
                lines.append(f"tool_finished {event.name} {status}")
            case "turn_finished":
                lines.append(f"turn_finished {event.reply.stop_reason}")
            case "error":
                lines.append(f"error {event.error_type}")
            case "file_created":
                lines.append(f"file_created {event.file.name}")
            case "paused":
                lines.append(f"paused {event.count}")
            case "text_delta":
                lines.append(f"text_delta {event.text!r}")
            case _:
                lines.append(event.kind)
    return lines


def _matches(event: Event, expected: str | Mapping[str, Any]) -> bool:
    if isinstance(expected, str):
        return event.kind == expected or (summarize([event], ignore=()) == [expected])
    data = event.model_dump()
    return all(data.get(key) == value for key, value in expected.items())


def assert_events(
    events: Sequence[Event],
    expected: Sequence[str | Mapping[str, Any]],
    *,
    ignore: Iterable[str] = DEFAULT_IGNORED,
) -> None:
    """Assert the whole event sequence, in order.

    Events whose kind is in ``ignore`` are skipped first. Each expected item is
    a kind (``"tool_started"``), a :func:`summarize` line
    (``"tool_finished bash_tool ok"``), or a mapping of fields the event must
    have (``{"kind": "tool_finished", "exit_code": 0}``).

    Raises:
        AssertionError: with both sequences side by side when they differ.
    """
    skipped = set(ignore)
    kept = [e for e in events if e.kind not in skipped]
    ok = len(kept) == len(expected) and all(
        _matches(e, x) for e, x in zip(kept, expected, strict=True)
    )
    if not ok:
        got = "\n".join(f"  {line}" for line in summarize(kept, ignore=()))
        want = "\n".join(f"  {item}" for item in expected)
        raise AssertionError(f"event sequence differs\nexpected:\n{want}\ngot:\n{got}")
