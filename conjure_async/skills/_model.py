"""The data model of a loaded skill: :class:`Skill`, :class:`Diagnostic` and its resources."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from conjure_async._exceptions import SkillResourceError
from conjure_async.skills._parse import open_regular_file, parse_skill_md, read_skill_md
from conjure_async.skills._text import shorten

__all__ = [
    "MAX_DIAGNOSTIC_FIELD",
    "MAX_DIAGNOSTIC_MESSAGE",
    "SKILL_FILE",
    "Diagnostic",
    "Severity",
    "Skill",
    "SkillResources",
]

SKILL_FILE = "SKILL.md"
"""The name of the file that makes a directory a skill."""

Severity = Literal["error", "warning"]

_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_CHUNK = 1 << 16

MAX_DIAGNOSTIC_FIELD = 200
"""Longest :attr:`Diagnostic.field`, in characters; longer ones are truncated."""
MAX_DIAGNOSTIC_MESSAGE = 1000
"""Longest :attr:`Diagnostic.message`, in characters; longer ones are truncated."""


@dataclasses.dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found while loading or validating a skill.

    ``str(diagnostic)`` is ``"path: field: message"``. The field and the
    message are capped (:data:`MAX_DIAGNOSTIC_FIELD`,
    :data:`MAX_DIAGNOSTIC_MESSAGE` characters): whatever a skill holds, one
    diagnostic stays small enough to print or log.
    """

    path: str
    """The file (usually a ``SKILL.md``), directory or package concerned."""
    field: str
    """The frontmatter field (``name``, ``metadata.version``...) or an area such
    as ``frontmatter``, ``package`` or ``path``."""
    message: str
    """What is wrong, in words a skill author can act on."""
    severity: Severity = "error"
    """``error`` breaks the specification; ``warning`` is advice."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", shorten(self.field, MAX_DIAGNOSTIC_FIELD))
        object.__setattr__(self, "message", shorten(self.message, MAX_DIAGNOSTIC_MESSAGE))

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """Return the diagnostic as a JSON-able dict."""
        return dataclasses.asdict(self)


class SkillResources(BaseModel):
    """The files of a skill besides ``SKILL.md``, as sorted relative POSIX paths."""

    model_config = ConfigDict(frozen=True)

    scripts: tuple[str, ...] = ()
    """Files under ``scripts/``."""
    references: tuple[str, ...] = ()
    """Files under ``references/``."""
    assets: tuple[str, ...] = ()
    """Files under ``assets/``."""
    other: tuple[str, ...] = ()
    """Every other file."""

    def all(self) -> tuple[str, ...]:
        """Return every resource path, sorted."""
        return tuple(sorted((*self.scripts, *self.references, *self.assets, *self.other)))


class Skill(BaseModel):
    """An Agent Skill: its metadata, where it lives, and its resources.

    Only the frontmatter and the list of files are read when a skill is
    loaded (progressive disclosure); the instructions (:attr:`body`) and the
    resources (:meth:`read_resource`) are read when asked for.

    Build skills with :func:`~conjure_async.skills.load_skills` or
    :func:`~conjure_async.skills.load_skill`, not by hand.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    """The skill's name (equals its directory name when valid)."""
    description: str
    """What the skill does and when to use it; shown to the model."""
    license: str | None = None
    """The ``license`` field, if any."""
    compatibility: str | None = None
    """Environment requirements (``compatibility`` field), if any."""
    allowed_tools: list[str] = Field(default_factory=list)
    """Tools the skill is pre-approved to use, from the space-separated ``allowed-tools``."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """The ``metadata`` string map."""
    path: Path
    """The skill directory (for a ``.skill`` package, its extracted copy)."""
    source: Path | None = None
    """The ``.skill`` package the skill was extracted from, if any."""
    resources: SkillResources = Field(default_factory=SkillResources)
    """The skill's other files, grouped by top folder."""
    content_hash: str = ""
    """SHA-256 (hex) over the sorted relative paths and contents of every file."""
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    """Problems found when loading (warnings; errors too in lenient mode)."""

    _body: str | None = PrivateAttr(default=None)

    @property
    def skill_md(self) -> Path:
        """The path of the skill's ``SKILL.md``."""
        return self.path / SKILL_FILE

    @property
    def is_valid(self) -> bool:
        """True when no diagnostic is an error."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def body(self) -> str:
        """The Markdown instructions after the frontmatter, read on first access and cached."""
        return self.load_body()

    def load_body(self) -> str:
        """Read (once) and return the instructions after the frontmatter.

        Raises:
            SkillResourceError: ``SKILL.md`` cannot be read any more.
            SkillParseError: ``SKILL.md`` changed and no longer parses, or
                is now over the size limit or not valid UTF-8.
        """
        if self._body is None:
            try:
                text = read_skill_md(self.skill_md)
            except OSError as exc:
                raise SkillResourceError(str(self.path), SKILL_FILE, f"cannot read: {exc}") from exc
            self._body = parse_skill_md(text, str(self.skill_md))[1]
        return self._body

    def resolve_resource(self, relpath: str | os.PathLike[str]) -> Path:
        """Return the absolute path of a file of this skill, refusing escapes.

        Symlinks are resolved before the check, so a link pointing outside the
        skill directory is refused too.

        Raises:
            SkillResourceError: The path is absolute or resolves outside the
                skill directory.
        """
        rel = Path(relpath)
        root = self.path.resolve()
        if rel.is_absolute():
            raise SkillResourceError(
                str(self.path), str(relpath), "resource paths must be relative to the skill"
            )
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            raise SkillResourceError(
                str(self.path), str(relpath), "resolves outside the skill directory; refused"
            )
        return target

    def read_resource(self, relpath: str | os.PathLike[str]) -> bytes:
        """Return the bytes of a file of this skill, e.g. ``"scripts/run.py"``.

        Raises:
            SkillResourceError: The path escapes the skill directory (after
                resolving symlinks) or the file cannot be read.
        """
        target = self.resolve_resource(relpath)
        try:
            with open_regular_file(target) as fh:
                return fh.read()
        except OSError as exc:
            raise SkillResourceError(
                str(self.path), str(relpath), f"cannot read: {exc.strerror or exc}"
            ) from exc


def _skip(name: str) -> bool:
    return name.endswith(_SKIPPED_SUFFIXES)


def scan_files(root: Path) -> tuple[list[str], list[Diagnostic]]:
    """List a skill directory's files as sorted relative POSIX paths.

    ``__pycache__``/VCS folders and compiled Python files are skipped.
    Symlinks that resolve outside ``root`` and anything that is not a regular
    file (a named pipe, a socket, a device: reading one could block forever)
    are left out with a warning.
    """
    files: list[str] = []
    problems: list[Diagnostic] = []
    real_root = root.resolve()

    def ignore(path: Path, reason: str) -> None:
        problems.append(Diagnostic(str(path), "resources", f"{reason}; ignored", "warning"))

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        base = Path(dirpath)
        for name in filenames:
            if _skip(name):
                continue
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink() and not full.resolve().is_relative_to(real_root):
                ignore(full, "symlink points outside the skill directory")
            elif not full.is_file():
                ignore(full, "is not a regular file")
            else:
                files.append(rel)
    files.sort()
    return files, problems


def group_resources(files: list[str]) -> SkillResources:
    """Group relative paths into scripts, references, assets and other (``SKILL.md`` excluded)."""
    groups: dict[str, list[str]] = {"scripts": [], "references": [], "assets": [], "other": []}
    for rel in sorted(files):
        if rel == SKILL_FILE:
            continue
        top = rel.split("/", 1)[0] if "/" in rel else ""
        groups[top if top in ("scripts", "references", "assets") else "other"].append(rel)
    return SkillResources(
        scripts=tuple(groups["scripts"]),
        references=tuple(groups["references"]),
        assets=tuple(groups["assets"]),
        other=tuple(groups["other"]),
    )


def hash_files(root: Path, files: list[str]) -> str:
    """Return the SHA-256 hex digest over sorted relative paths and file bytes.

    Each file contributes its length-prefixed relative path and the digest of
    its content, so the result does not depend on the walk order or on where
    the directory lives.
    """
    digest = hashlib.sha256()
    for rel in sorted(files):
        encoded = rel.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
        content = hashlib.sha256()
        with open_regular_file(root / rel) as fh:
            while chunk := fh.read(_CHUNK):
                content.update(chunk)
        digest.update(content.digest())
    return digest.hexdigest()
