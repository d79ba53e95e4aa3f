"""Loading skills from directories, folders of skills and ``.skill`` packages."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conjure_async._exceptions import (
    SkillError,
    SkillNotFoundError,
    SkillPackageError,
    SkillParseError,
    SkillValidationError,
)
from conjure_async.skills._model import (
    SKILL_FILE,
    Diagnostic,
    Skill,
    group_resources,
    hash_files,
    scan_files,
)
from conjure_async.skills._package import PACKAGE_SUFFIX, extract_skill_package
from conjure_async.skills._parse import parse_skill_md, read_skill_md
from conjure_async.skills._validate import Profile, check_profile, validate_frontmatter

__all__ = ["NO_SKILLS_FOUND", "SkillSet", "load_skill", "load_skills"]

logger = logging.getLogger("conjure_async.skills")

MAX_BODY_LINES = 500
"""The specification recommends keeping ``SKILL.md`` bodies under this many lines."""

StrPath = str | os.PathLike[str]


class SkillSet(list[Skill]):
    """The skills that loaded, in load order, plus every diagnostic.

    A plain ``list`` of :class:`Skill` (so it can be passed wherever a list of
    skills is expected) with two extra attributes:

    Attributes:
        diagnostics: Every problem found, both those attached to loaded
            skills and those of sources that could not be loaded at all.
        failures: The diagnostics of sources that could not be loaded (an
            unreadable or unparsable ``SKILL.md``, an unsafe package, a
            missing name or description, a duplicate name, a missing path).
            Always empty in strict mode, which raises instead.
    """

    def __init__(
        self,
        skills: Iterable[Skill] = (),
        *,
        diagnostics: Iterable[Diagnostic] = (),
        failures: Iterable[Diagnostic] = (),
    ) -> None:
        super().__init__(skills)
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.failures: list[Diagnostic] = list(failures)

    @property
    def errors(self) -> list[Diagnostic]:
        """The diagnostics of severity ``error``."""
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error."""
        return not self.errors

    def names(self) -> list[str]:
        """Return the names of the loaded skills, in order."""
        return [s.name for s in self]

    def get(self, name: str) -> Skill:
        """Return the loaded skill called ``name``.

        Raises:
            SkillNotFoundError: No loaded skill has that name.
        """
        for skill in self:
            if skill.name == name:
                return skill
        raise SkillNotFoundError(f"no skill named {name!r}; loaded: {', '.join(self.names())}")


@dataclasses.dataclass
class _Outcome:
    skill: Skill | None
    diagnostics: list[Diagnostic]


@dataclasses.dataclass(frozen=True)
class _Source:
    directory: Path | None = None
    package: Path | None = None
    failure: Diagnostic | None = None


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in value.items()
        if isinstance(v, str | int | float | bool) and isinstance(k, str | int | float | bool)
    }


def _tools(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _body_warnings(body: str, body_start: int, display: str) -> list[Diagnostic]:
    lines = body.strip("\n").count("\n") + 1 if body.strip() else 0
    if lines == 0:
        return [Diagnostic(display, "body", "is empty; add the skill's instructions", "warning")]
    total = body_start - 1 + lines
    if total > MAX_BODY_LINES:
        return [
            Diagnostic(
                display,
                "body",
                f"SKILL.md has {total} lines; keep it under {MAX_BODY_LINES} and move "
                "details to references/",
                "warning",
            )
        ]
    return []


def _load_directory(directory: Path, profile: Profile, package: Path | None = None) -> _Outcome:
    skill_md = directory / SKILL_FILE
    display = f"{package}!/{directory.name}/{SKILL_FILE}" if package else str(skill_md)
    try:
        text = read_skill_md(skill_md, display)
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
        return _Outcome(None, [Diagnostic(display, SKILL_FILE, reason)])
    except SkillParseError as exc:
        return _Outcome(None, [Diagnostic(display, SKILL_FILE, exc.reason)])
    try:
        frontmatter, body, body_start = parse_skill_md(text, display)
    except SkillParseError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        return _Outcome(None, [Diagnostic(display, "frontmatter", f"{where}{exc.reason}")])
    diagnostics = validate_frontmatter(
        frontmatter, path=display, dir_name=directory.name, profile=profile
    )
    diagnostics += _body_warnings(body, body_start, display)
    try:
        files, file_warnings = scan_files(directory)
        content_hash = hash_files(directory, files)
    except OSError as exc:
        diagnostics.append(Diagnostic(display, "resources", f"cannot read: {exc}"))
        return _Outcome(None, diagnostics)
    diagnostics += file_warnings
    name: Any = frontmatter.get("name")
    description: Any = frontmatter.get("description")
    if not isinstance(name, str) or not name or not isinstance(description, str):
        return _Outcome(None, diagnostics)
    skill = Skill(
        name=name,
        description=description,
        license=_optional_str(frontmatter.get("license")),
        compatibility=_optional_str(frontmatter.get("compatibility")),
        allowed_tools=_tools(frontmatter.get("allowed-tools")),
        metadata=_strings(frontmatter.get("metadata")),
        path=directory.absolute(),
        source=package.absolute() if package else None,
        resources=group_resources(files),
        content_hash=content_hash,
        diagnostics=diagnostics,
    )
    return _Outcome(skill, diagnostics)


def _misnamed_skill_files(directory: Path) -> list[str]:
    """Return files of ``directory`` named like SKILL.md in another case (``skill.md``)."""
    try:
        return sorted(c.name for c in directory.iterdir() if c.name.lower() == "skill.md")
    except OSError:
        return []


NO_SKILLS_FOUND = "no skills found (no SKILL.md in it or in its sub-folders, and no .skill package)"
"""The message of the warning for a folder that holds no skill source."""


def _has_skill_md(directory: Path) -> bool:
    # Any directory entry named SKILL.md, not only a regular file: a pipe, a
    # device or a dangling symlink is then reported when read, not skipped.
    return os.path.lexists(directory / SKILL_FILE)


def _sources(path: Path) -> list[_Source]:
    """Classify ``path`` into the skill sources it holds."""
    if path.name == SKILL_FILE and os.path.lexists(path) and not path.is_dir():
        return [_Source(directory=path.parent)]
    if path.is_file():
        if path.suffix == PACKAGE_SUFFIX:
            return [_Source(package=path)]
        message = "is not a skill directory, a folder of skills or a .skill package"
        return [_Source(failure=Diagnostic(str(path), "path", message))]
    if not path.is_dir():
        reason = "is not a file or a directory" if path.exists() else "does not exist"
        return [_Source(failure=Diagnostic(str(path), "path", reason))]
    if _has_skill_md(path):
        return [_Source(directory=path)]
    found: list[_Source] = []
    try:
        children = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        return [_Source(failure=Diagnostic(str(path), "path", f"cannot list: {exc}"))]
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if _has_skill_md(child):
                found.append(_Source(directory=child))
                continue
            misnamed = _misnamed_skill_files(child)
            if misnamed:
                message = f"found {misnamed[0]!r}; the file must be named exactly {SKILL_FILE}"
                found.append(_Source(failure=Diagnostic(str(child), SKILL_FILE, message)))
        elif child.suffix == PACKAGE_SUFFIX and child.is_file():
            found.append(_Source(package=child))
    if not found:
        warning = Diagnostic(str(path), "path", NO_SKILLS_FOUND, "warning")
        return [_Source(failure=warning)]
    return found


def _load_source(source: _Source, profile: Profile, cache_dir: StrPath | None) -> _Outcome:
    if source.failure is not None:
        return _Outcome(None, [source.failure])
    if source.package is not None:
        try:
            directory = extract_skill_package(source.package, cache_dir=cache_dir)
        except SkillPackageError as exc:
            return _Outcome(None, [Diagnostic(str(source.package), "package", exc.reason)])
        return _load_directory(directory, profile, package=source.package)
    assert source.directory is not None
    return _load_directory(source.directory, profile)


def _collect(paths: Iterable[StrPath], profile: Profile, cache_dir: StrPath | None) -> SkillSet:
    """Load every source under ``paths``; never raises for skill problems."""
    skills: list[Skill] = []
    diagnostics: list[Diagnostic] = []
    failures: list[Diagnostic] = []
    by_name: dict[str, Skill] = {}
    for raw in paths:
        for source in _sources(Path(raw)):
            outcome = _load_source(source, profile, cache_dir)
            skill = outcome.skill
            if skill is not None and skill.name in by_name:
                first = by_name[skill.name]
                duplicate = Diagnostic(
                    str(skill.skill_md),
                    "name",
                    f"duplicate skill name {skill.name!r} (already loaded from {first.path})",
                )
                outcome = _Outcome(None, [*outcome.diagnostics, duplicate])
                skill = None
            diagnostics += outcome.diagnostics
            if skill is None:
                failures += outcome.diagnostics
            else:
                by_name[skill.name] = skill
                skills.append(skill)
    return SkillSet(skills, diagnostics=diagnostics, failures=failures)


def _finish(result: SkillSet, lenient: bool) -> SkillSet:
    errors = result.errors
    if not errors:
        return result
    if not lenient:
        raise SkillValidationError(errors)
    logger.warning(
        "loaded %d skill(s) leniently with %d problem(s), %d source(s) not loaded:\n%s",
        len(result),
        len(errors),
        len({d.path for d in result.failures if d.severity == "error"}),
        "\n".join(f"  - {d}" for d in errors),
    )
    return result


def load_skills(
    *paths: StrPath,
    lenient: bool = False,
    profile: Profile = "agentskills",
    cache_dir: StrPath | None = None,
) -> SkillSet:
    """Load skills from skill directories, folders of skills and ``.skill`` packages.

    A synchronous function, meant for module level (``skills =
    load_skills("skills/")``); from async code, call it through
    ``anyio.to_thread.run_sync`` or use :class:`SkillRegistry`.

    Each path may be a skill directory (it holds ``SKILL.md``), a folder whose
    sub-directories are skills and whose ``*.skill`` files are packages
    (loaded in sorted name order; hidden entries skipped), or a ``.skill``
    package, which is extracted safely into ``cache_dir`` (see
    :func:`extract_skill_package`).

    In strict mode (the default) any error raises one
    :class:`SkillValidationError` listing every problem of every skill, each
    with its file and field. In lenient mode nothing raises for skill
    problems: the result holds the skills that could be loaded, each with its
    :attr:`Skill.diagnostics`; ``result.diagnostics`` holds every problem and
    ``result.failures`` those of the sources that could not be loaded at all;
    one warning is logged on the ``conjure_async.skills`` logger. Warnings
    (e.g. an empty body) never fail a load.

    Args:
        *paths: Where to look.
        lenient: Collect problems instead of raising.
        profile: ``"agentskills"`` (the open specification) or ``"anthropic"``
            (also the hosted platform's rules).
        cache_dir: Where ``.skill`` packages are extracted.

    Returns:
        A :class:`SkillSet`: a list of the loaded skills with ``diagnostics``
        and ``failures``.

    Raises:
        SkillValidationError: In strict mode, when any skill has an error.
        ValueError: ``profile`` is unknown.
    """
    checked = check_profile(profile)
    return _finish(_collect(paths, checked, cache_dir), lenient)


def load_skill(
    path: StrPath,
    *,
    lenient: bool = False,
    profile: Profile = "agentskills",
    cache_dir: StrPath | None = None,
) -> Skill:
    """Load one skill from its directory, its ``SKILL.md`` or a ``.skill`` package.

    Args:
        path: The skill directory, its ``SKILL.md``, or a ``.skill`` file.
        lenient: Return the skill with its problems in
            :attr:`Skill.diagnostics` instead of raising (a skill that cannot
            be loaded at all still raises).
        profile: ``"agentskills"`` or ``"anthropic"``.
        cache_dir: Where a ``.skill`` package is extracted.

    Returns:
        The skill.

    Raises:
        SkillValidationError: The skill has errors (strict mode) or cannot be
            loaded (both modes); every problem is listed.
        SkillError: ``path`` is a folder of skills, not one skill.
        ValueError: ``profile`` is unknown.
    """
    checked = check_profile(profile)
    candidate = Path(path)
    if candidate.is_dir() and not _has_skill_md(candidate):
        raise SkillError(
            f"{candidate}: not a skill directory (no {SKILL_FILE}); "
            "use load_skills() for a folder of skills"
        )
    result = _finish(_collect([candidate], checked, cache_dir), lenient)
    if not result:
        raise SkillValidationError(result.failures)
    return result[0]
