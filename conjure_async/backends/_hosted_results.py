"""What a hosted code execution result block says: output, exit code, error, created files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from conjure_async.backends._output import OutputCapture

__all__ = ["outcome_of"]

_RUN_RESULTS = frozenset(
    {"bash_code_execution_result", "code_execution_result", "encrypted_code_execution_result"}
)


@dataclass(frozen=True, slots=True)
class _Outcome:
    output: str
    is_error: bool = False
    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    file_ids: tuple[str, ...] = ()


def _capped(text: str) -> str:
    capture = OutputCapture()
    capture.add(text)
    return capture.text()


def outcome_of(content: Any) -> _Outcome:
    """Read a code execution result's ``content`` (every documented variant)."""
    if not isinstance(content, dict):
        return _Outcome(output=_capped(json.dumps(content)), is_error=True)
    kind = str(content.get("type", ""))
    if kind.endswith("_error"):
        code = content.get("error_code") or "error"
        message = content.get("error_message")
        detail = f": {message}" if message else ""
        return _Outcome(output=f"error: {code}{detail}", is_error=True)
    if kind in _RUN_RESULTS:
        stdout = str(content.get("stdout") or "")
        stderr = str(content.get("stderr") or "")
        code = content.get("return_code")
        exit_code = code if isinstance(code, int) else None
        output = _capped(stdout + stderr)
        if exit_code:
            output = f"{output}\n[exit code {exit_code}]" if output else f"[exit code {exit_code}]"
        file_ids = tuple(
            str(item["file_id"])
            for item in content.get("content") or []
            if isinstance(item, dict) and item.get("file_id")
        )
        return _Outcome(
            output=output or "(no output)",
            is_error=bool(exit_code),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            file_ids=file_ids,
        )
    if kind == "text_editor_code_execution_view_result":
        return _Outcome(output=_capped(str(content.get("content") or "")) or "(empty file)")
    if kind == "text_editor_code_execution_create_result":
        return _Outcome(output="File updated" if content.get("is_file_update") else "File created")
    if kind == "text_editor_code_execution_str_replace_result":
        lines = content.get("lines")
        text = "\n".join(str(line) for line in lines) if isinstance(lines, list) else ""
        return _Outcome(output=_capped(text) or "Replaced")
    return _Outcome(output=_capped(json.dumps(content)))
