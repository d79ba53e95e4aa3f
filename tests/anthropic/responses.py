"""Hosted-container answers the fake server plays back, shared by the hosted tests."""

from __future__ import annotations

from typing import Any


def saved_files_answer(
    *file_ids: str, text: str = "Done.", lead: str | None = None, call_id: str = "srv_1"
) -> dict[str, Any]:
    """A response in which code execution ran a script that saved ``file_ids``, then ``text``."""
    content: list[dict[str, Any]] = [{"type": "text", "text": lead}] if lead else []
    content += [
        {
            "type": "server_tool_use",
            "id": call_id,
            "name": "bash_code_execution",
            "input": {"command": "python make.py"},
        },
        {
            "type": "bash_code_execution_tool_result",
            "tool_use_id": call_id,
            "content": {
                "type": "bash_code_execution_result",
                "stdout": "saved\n",
                "stderr": "",
                "return_code": 0,
                "content": [{"type": "bash_code_execution_output", "file_id": f} for f in file_ids],
            },
        },
        {"type": "text", "text": text},
    ]
    return {"content": content, "stop_reason": "end_turn"}
