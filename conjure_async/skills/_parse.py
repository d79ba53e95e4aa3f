"""Parsing of ``SKILL.md``: YAML frontmatter between ``---`` lines, then a Markdown body."""

from __future__ import annotations

from typing import Any

import yaml

from conjure_async._exceptions import SkillParseError

__all__ = ["parse_skill_md"]

_BOM = "\ufeff"
_FENCE = "---"


def _is_fence(line: str) -> bool:
    return line.rstrip() == _FENCE


def _yaml_error_line(exc: yaml.YAMLError) -> int | None:
    """Return the 0-indexed line of the YAML document that ``exc`` points at."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return int(mark.line)
    return None


def _yaml_error_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        if parts:
            return "; ".join(parts)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def parse_skill_md(text: str, path: str) -> tuple[dict[str, Any], str, int]:
    r"""Split a ``SKILL.md`` text into its frontmatter mapping and its body.

    The file must start with a ``---`` line, followed by YAML (read with
    ``yaml.safe_load``) and a closing ``---`` line. A leading UTF-8 byte order
    mark is ignored, and CRLF (or CR) line endings are read as LF.

    Args:
        text: The decoded content of the file.
        path: The file's path, used only in error messages.

    Returns:
        ``(mapping, body, body_start_line)``: the frontmatter as a dict with
        string keys, the Markdown body after the closing fence (line endings
        normalised to ``\n``), and the 1-indexed file line where the body
        starts.

    Raises:
        SkillParseError: The frontmatter is missing or unterminated, is not
            valid YAML (``line`` is the file line the YAML error points at), or
            is not a mapping with string keys.
    """
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not _is_fence(lines[0]):
        raise SkillParseError(path, "missing frontmatter: SKILL.md must start with a '---' line", 1)
    close = next((i for i in range(1, len(lines)) if _is_fence(lines[i])), None)
    if close is None:
        raise SkillParseError(
            path, "unterminated frontmatter: no closing '---' line after line 1", 1
        )
    source = "\n".join(lines[1:close])
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        yaml_line = _yaml_error_line(exc)
        line = yaml_line + 2 if yaml_line is not None else 2
        raise SkillParseError(path, f"invalid YAML: {_yaml_error_reason(exc)}", line) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise plain errors for some scalars, e.g. the
        # timestamp ``2001-13-45`` (month out of range) raises ValueError.
        raise SkillParseError(path, f"invalid YAML value: {exc}", 2) from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SkillParseError(path, f"frontmatter must be a YAML mapping, got {kind}", 2)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SkillParseError(path, f"frontmatter keys must be strings, got {bad_keys[0]!r}", 2)
    body = "\n".join(lines[close + 1 :])
    return data, body, close + 2
