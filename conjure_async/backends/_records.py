"""Results of finished tool calls kept under their idempotency key (at-least-once made safe).

A durable session retries a tool call whose worker died; when the first
attempt had finished (its result recorded) before the worker died, the retry
returns the record instead of running the command again. A record is written
after the command ends, atomically (a temporary name, then a rename), so a
half-written record is never read; a call stopped before its end (killed,
timed out, cancelled) has no record and runs again. See ``docs/durable.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from conjure_async.backends._base import ToolResult
from conjure_async.events import CreatedFile

__all__ = [
    "RECORDS_DIR",
    "parse_record",
    "read_record",
    "record_name",
    "record_result",
    "write_record",
]

RECORDS_DIR = ".conjure-calls"
"""The folder of records inside a workspace (never reported as created files)."""


def record_name(key: str) -> str:
    """The file name of the record of ``key`` (a digest: keys may hold any character)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40] + ".json"


def record_result(result: ToolResult) -> bytes:
    """A result as the JSON bytes of its record."""
    return json.dumps(
        {
            "output": result.output,
            "is_error": result.is_error,
            "exit_code": result.exit_code,
            "files": [f.model_dump(mode="json") for f in result.files],
        }
    ).encode()


def parse_record(data: bytes) -> ToolResult | None:
    """The result in a record, or ``None`` when it cannot be read."""
    try:
        raw = json.loads(data)
        return ToolResult(
            output=raw["output"],
            is_error=bool(raw["is_error"]),
            exit_code=raw.get("exit_code"),
            files=tuple(CreatedFile.model_validate(f) for f in raw.get("files", [])),
        )
    except (ValueError, KeyError, TypeError):
        return None


def read_record(folder: Path, key: str) -> ToolResult | None:
    """The recorded result of ``key`` in ``folder``, if a finished attempt left one."""
    try:
        data = (folder / RECORDS_DIR / record_name(key)).read_bytes()
    except OSError:
        return None
    return parse_record(data)


def write_record(folder: Path, key: str, result: ToolResult) -> None:
    """Record ``result`` under ``key`` in ``folder`` (atomically; failures are ignored)."""
    records = folder / RECORDS_DIR
    target = records / record_name(key)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        records.mkdir(exist_ok=True)
        partial.write_bytes(record_result(result))
        partial.replace(target)
    except OSError:
        partial.unlink(missing_ok=True)
