"""Parsing of ``SKILL.md``: YAML frontmatter between ``---`` lines, then a Markdown body.

Hostile files are bounded before any YAML is read: the whole file is limited
to :data:`MAX_SKILL_MD_SIZE` bytes and the frontmatter to
:data:`MAX_FRONTMATTER_SIZE` characters, and YAML anchors and aliases are
refused, so an alias "billion laughs" never expands.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import yaml

from conjure_async._exceptions import SkillParseError
from conjure_async.skills._text import quote, shorten

__all__ = [
    "MAX_FRONTMATTER_SIZE",
    "MAX_SKILL_MD_SIZE",
    "open_regular_file",
    "parse_skill_md",
    "read_skill_md",
]

MAX_SKILL_MD_SIZE = 4 * 1024 * 1024
"""Largest ``SKILL.md`` read, in bytes (4 MiB).

Far above any file a model can use (the specification recommends bodies under
500 lines) and under the hosted platform's limit of 8 MB for a whole skill.
A larger file is refused before it is read.
"""

MAX_FRONTMATTER_SIZE = 64 * 1024
"""Largest frontmatter (the text between the ``---`` lines), in characters.

The specification's fields need about 2,000 characters (``name`` 64,
``description`` 1,024, ``compatibility`` 500); the rest is room for
``metadata``. A longer frontmatter is refused before YAML reads it.
"""

_BOM = "\ufeff"
_FENCE = "---"
_REASON_LIMIT = 300
_MAX_FENCE_LINE = 256
_NO_ANCHORS = (
    "YAML anchors and aliases (&name, *name) are not allowed in SKILL.md frontmatter; "
    "write each value out"
)


class _FrontmatterLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases.

    The frontmatter has no use for them, and an alias is how a YAML
    "billion laughs" (nine anchors, each listing the previous one nine times)
    turns 400 bytes into a billion values. The agentskills reference validator
    (strictyaml) refuses them too.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        peek: Callable[[], Any] = self.peek_event  # PyYAML's parser is untyped
        event = peek()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, _NO_ANCHORS, event.start_mark)
        return super().compose_node(parent, index)


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


def open_regular_file(path: Path) -> IO[bytes]:
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    The file is opened without blocking, so a named pipe is refused rather
    than waited on forever.

    Raises:
        OSError: The file cannot be opened, or is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise OSError("not a regular file")


def read_skill_md(path: Path, display: str | None = None) -> str:
    """Read and decode a ``SKILL.md``, refusing oversized or special files before reading.

    Args:
        path: The file.
        display: How to name the file in errors; ``str(path)`` by default.

    Returns:
        The decoded text.

    Raises:
        OSError: The file cannot be opened or read.
        SkillParseError: It is not a regular file, is larger than
            :data:`MAX_SKILL_MD_SIZE` bytes, or is not valid UTF-8.
    """
    name = display if display is not None else str(path)
    try:
        fh = open_regular_file(path)
    except OSError as exc:
        if path.exists() and not path.is_file():
            raise SkillParseError(name, "is not a regular file; refused") from exc
        raise
    with fh:
        size = os.fstat(fh.fileno()).st_size
        data = b"" if size > MAX_SKILL_MD_SIZE else fh.read(MAX_SKILL_MD_SIZE + 1)
    if size > MAX_SKILL_MD_SIZE or len(data) > MAX_SKILL_MD_SIZE:
        raise SkillParseError(
            name,
            f"is {max(size, len(data))} bytes, more than the {MAX_SKILL_MD_SIZE}-byte limit "
            "for SKILL.md; refused before parsing (move long content to references/)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkillParseError(
            name, f"is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc


def _find_closing_fence(text: str, start: int, path: str) -> int:
    """Return the offset of the closing fence line; never scan past the frontmatter limit."""
    pos = start
    while True:
        end = text.find("\n", pos)
        if end == -1:
            end = len(text)
        if end - pos <= _MAX_FENCE_LINE and _is_fence(text[pos:end]):
            return pos
        if end - start > MAX_FRONTMATTER_SIZE:
            raise SkillParseError(
                path,
                f"frontmatter is longer than the {MAX_FRONTMATTER_SIZE}-character limit "
                "(or has no closing '---' line); refused before parsing",
                1,
            )
        if end == len(text):
            raise SkillParseError(
                path, "unterminated frontmatter: no closing '---' line after line 1", 1
            )
        pos = end + 1


def _load_yaml(source: str, path: str) -> Any:
    loader = _FrontmatterLoader(source)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        yaml_line = _yaml_error_line(exc)
        line = yaml_line + 2 if yaml_line is not None else 2
        reason = shorten(_yaml_error_reason(exc), _REASON_LIMIT)
        raise SkillParseError(path, f"invalid YAML: {reason}", line) from exc
    except RecursionError as exc:
        raise SkillParseError(path, "invalid YAML: nested too deeply", 2) from exc
    except Exception as exc:
        # PyYAML's constructors raise plain errors for malformed tagged values:
        # ValueError for the timestamp 2001-13-45, AttributeError for
        # ``!!timestamp "xyz"``, KeyError for ``!!bool maybe``...
        detail = shorten(str(exc), _REASON_LIMIT) or type(exc).__name__
        raise SkillParseError(path, f"invalid YAML value: {detail}", 2) from exc
    finally:
        loader.dispose()


def parse_skill_md(text: str, path: str) -> tuple[dict[str, Any], str, int]:
    r"""Split a ``SKILL.md`` text into its frontmatter mapping and its body.

    The file must start with a ``---`` line, followed by YAML (read like
    ``yaml.safe_load``, but anchors and aliases are refused) and a closing
    ``---`` line. A leading UTF-8 byte order mark is ignored, and CRLF (or CR)
    line endings are read as LF. A text over :data:`MAX_SKILL_MD_SIZE`
    characters or a frontmatter over :data:`MAX_FRONTMATTER_SIZE` characters
    is refused before any YAML is read.

    Args:
        text: The decoded content of the file.
        path: The file's path, used only in error messages.

    Returns:
        ``(mapping, body, body_start_line)``: the frontmatter as a dict with
        string keys, the Markdown body after the closing fence (line endings
        normalised to ``\n``), and the 1-indexed file line where the body
        starts.

    Raises:
        SkillParseError: The text or its frontmatter is too large, the
            frontmatter is missing or unterminated, is not valid YAML (``line``
            is the file line the YAML error points at), uses anchors or
            aliases, or is not a mapping with string keys.
    """
    if len(text) > MAX_SKILL_MD_SIZE:
        raise SkillParseError(
            path,
            f"is {len(text)} characters, more than the {MAX_SKILL_MD_SIZE}-byte limit "
            "for SKILL.md; refused before parsing",
        )
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first_end = text.find("\n")
    if first_end == -1:
        first_end = len(text)
    if first_end > _MAX_FENCE_LINE or not _is_fence(text[:first_end]):
        raise SkillParseError(path, "missing frontmatter: SKILL.md must start with a '---' line", 1)
    start = first_end + 1
    if start > len(text):
        raise SkillParseError(
            path, "unterminated frontmatter: no closing '---' line after line 1", 1
        )
    close = _find_closing_fence(text, start, path)
    source = text[start : close - 1] if close > start else ""
    data = _load_yaml(source, path)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SkillParseError(path, f"frontmatter must be a YAML mapping, got {kind}", 2)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SkillParseError(
            path, f"frontmatter keys must be strings, got {quote(bad_keys[0])}", 2
        )
    close_end = text.find("\n", close)
    body = "" if close_end == -1 else text[close_end + 1 :]
    frontmatter_lines = source.count("\n") + 1 if close > start else 0
    return data, body, frontmatter_lines + 3
