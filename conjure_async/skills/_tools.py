"""Definitions of the four tools a model uses to work with file-based skills."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Final

from conjure_async.messages import ToolDefinition

__all__ = [
    "BASH_TOOL",
    "CREATE_FILE",
    "SKILL_TOOL_NAMES",
    "STR_REPLACE",
    "VIEW",
    "skill_tool_definitions",
]

VIEW: Final = "view"
BASH_TOOL: Final = "bash_tool"
CREATE_FILE: Final = "create_file"
STR_REPLACE: Final = "str_replace"
SKILL_TOOL_NAMES: Final = (VIEW, BASH_TOOL, CREATE_FILE, STR_REPLACE)
"""The names of the skill tools, in the order :func:`skill_tool_definitions` returns them."""

_DESCRIPTION_PROPERTY = {
    "type": "string",
    "description": "Why you are running this, in a few words (shown to the user).",
}

_DEFINITIONS: dict[str, tuple[str, dict[str, Any]]] = {
    VIEW: (
        (
            "View a text file with line numbers, or list a directory's files two levels "
            "deep. Use it to read a skill's SKILL.md before using the skill, and any file "
            "the skill refers to."
        ),
        {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute path of the file or directory to view.",
                },
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": (
                        "Optional [start, end] line range, 1-indexed and inclusive; "
                        "end -1 means the end of the file."
                    ),
                },
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    ),
    BASH_TOOL: (
        (
            "Run a bash command in the working directory and return its output and exit "
            "code. Use it to run a skill's scripts."
        ),
        {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to run."},
                "description": _DESCRIPTION_PROPERTY,
            },
            "required": ["command", "description"],
            "additionalProperties": False,
        },
    ),
    CREATE_FILE: (
        "Create a new file with the given content, or overwrite an existing one.",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path of the file to create."},
                "file_text": {"type": "string", "description": "The file's full content."},
                "description": _DESCRIPTION_PROPERTY,
            },
            "required": ["description", "path", "file_text"],
            "additionalProperties": False,
        },
    ),
    STR_REPLACE: (
        (
            "Replace one unique occurrence of a string in a file with another string. "
            "old_str must appear exactly once; new_str may be empty to delete it."
        ),
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path of the file to edit."},
                "old_str": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The exact text to replace; it must appear once.",
                },
                "new_str": {
                    "type": "string",
                    "description": "The replacement text (empty to delete old_str).",
                },
                "description": _DESCRIPTION_PROPERTY,
            },
            "required": ["description", "path", "old_str", "new_str"],
            "additionalProperties": False,
        },
    ),
}


def _names(value: str | Iterable[str] | None, argument: str) -> set[str] | None:
    if value is None:
        return None
    names = {value} if isinstance(value, str) else set(value)
    unknown = sorted(names - set(SKILL_TOOL_NAMES))
    if unknown:
        raise ValueError(
            f"{argument}: unknown skill tool name(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(SKILL_TOOL_NAMES)}"
        )
    return names


def skill_tool_definitions(
    only: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> list[ToolDefinition]:
    """Return the definitions of the skill tools.

    The tools are ``view``, ``bash_tool``, ``create_file`` and ``str_replace``.
    Each call returns fresh objects, in :data:`SKILL_TOOL_NAMES` order; every
    input schema sets ``additionalProperties: false``.

    Args:
        only: Keep only these tools (a name or names).
        exclude: Leave these tools out (a name or names).

    Returns:
        The tool definitions to offer the model.

    Raises:
        ValueError: ``only`` or ``exclude`` names a tool that does not exist.
    """
    keep = _names(only, "only")
    drop = _names(exclude, "exclude") or set()
    return [
        ToolDefinition(name=name, description=description, input_schema=copy.deepcopy(schema))
        for name, (description, schema) in _DEFINITIONS.items()
        if (keep is None or name in keep) and name not in drop
    ]
