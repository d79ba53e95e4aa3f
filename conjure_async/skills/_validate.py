"""Validation of ``SKILL.md`` frontmatter against the Agent Skills specification."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from conjure_async.skills._model import Diagnostic
from conjure_async.skills._text import quote

__all__ = [
    "ALLOWED_FIELDS",
    "MAX_COMPATIBILITY_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_DIAGNOSTICS",
    "MAX_NAME_LENGTH",
    "Profile",
    "name_problems",
    "validate_frontmatter",
]

Profile = Literal["agentskills", "anthropic"]
"""``agentskills``: the open specification (agentskills.io). ``anthropic``: the
specification plus the extra rules of Anthropic's hosted platform."""

PROFILES: tuple[Profile, ...] = ("agentskills", "anthropic")

ALLOWED_FIELDS = frozenset(
    {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
)
"""The top-level frontmatter fields the specification defines."""

MAX_NAME_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 1024
MAX_COMPATIBILITY_LENGTH = 500
RESERVED_WORDS = ("anthropic", "claude")

MAX_DIAGNOSTICS = 25
"""Most diagnostics :func:`validate_frontmatter` returns for one frontmatter; the
last one then says how many more were found."""

_MAX_CHARS_SHOWN = 10
_ASCII_NAME = re.compile(r"[a-z0-9-]+")
_XML_TAG = re.compile(r"<\s*/?\s*[A-Za-z_][^<>]*>")


def check_profile(profile: str) -> Profile:
    """Return ``profile`` if it is known.

    Raises:
        ValueError: The profile is not one of :data:`PROFILES`.
    """
    for known in PROFILES:
        if profile == known:
            return known
    raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")


def _chars(found: set[str]) -> str:
    """Quote a few of ``found``, sorted, and say how many more there are."""
    ordered = sorted(found)
    shown = ", ".join(repr(ch) for ch in ordered[:_MAX_CHARS_SHOWN])
    more = len(ordered) - _MAX_CHARS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def name_problems(name: object, dir_name: str | None, profile: Profile) -> list[str]:
    """Return what is wrong with a skill ``name`` (empty when valid).

    The rules of :func:`validate_frontmatter`, for the ``name`` field alone.
    """
    if not isinstance(name, str):
        return ["is required and must be a string" if name is None else "must be a string"]
    normal = unicodedata.normalize("NFKC", name)
    problems: list[str] = []
    if not 1 <= len(normal) <= MAX_NAME_LENGTH:
        problems.append(f"must be 1-{MAX_NAME_LENGTH} characters (got {len(normal)})")
    # As the agentskills reference validator: every character a letter or a
    # digit in any script (str.isalnum) or '-', and letters that have case in
    # lowercase; letters without case (CJK, kana, Hangul...) count as lowercase.
    invalid = {ch for ch in normal if not (ch.isalnum() or ch == "-")}
    if invalid:
        problems.append(f"may contain only letters, digits and hyphens (found {_chars(invalid)})")
    cased = {ch for ch in normal if ch.lower() != ch}
    if cased:
        problems.append(f"must be lowercase (found {_chars(cased)})")
    if normal.startswith("-") or normal.endswith("-"):
        problems.append("must not start or end with a hyphen")
    if "--" in normal:
        problems.append("must not contain consecutive hyphens ('--')")
    if dir_name is not None and unicodedata.normalize("NFKC", dir_name) != normal:
        problems.append(f"{quote(name)} must match the skill directory name {quote(dir_name)}")
    if profile == "anthropic":
        if normal and not _ASCII_NAME.fullmatch(normal):
            problems.append("must use only a-z, 0-9 and '-' on the hosted platform")
        reserved = [w for w in RESERVED_WORDS if w in normal.lower()]
        if reserved:
            problems.append(f"must not contain the reserved word {reserved[0]!r}")
        if _XML_TAG.search(name):
            problems.append("must not contain XML tags")
    return problems


def _description_problems(description: object, profile: Profile) -> list[str]:
    if not isinstance(description, str):
        if description is None:
            return ["is required and must be a non-empty string"]
        return ["must be a string"]
    problems: list[str] = []
    if not description.strip():
        problems.append("must not be empty")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        problems.append(
            f"must be at most {MAX_DESCRIPTION_LENGTH} characters (got {len(description)})"
        )
    if profile == "anthropic" and _XML_TAG.search(description):
        problems.append("must not contain XML tags")
    return problems


def validate_frontmatter(
    frontmatter: Mapping[str, Any],
    *,
    path: str,
    dir_name: str | None = None,
    profile: Profile = "agentskills",
) -> list[Diagnostic]:
    """Check a parsed frontmatter mapping against the specification.

    Rules (``agentskills`` profile, as the reference validator): ``name`` is
    required, 1-64 characters after NFKC normalisation, only letters and
    digits of any script (``str.isalnum``) and hyphens, letters that have case
    in lowercase (letters without case, such as CJK, count as lowercase), no
    leading, trailing or doubled hyphen, and equal to the directory name
    (both NFKC-normalised); ``description`` is a non-empty
    string of at most 1024 characters; ``license`` is a string;
    ``compatibility`` a string of at most 500 characters; ``metadata`` a map
    of strings to strings; ``allowed-tools`` a space-separated string; no
    other top-level field. The ``anthropic`` profile also requires an ASCII
    ``[a-z0-9-]`` name without the words "anthropic" or "claude", and no XML
    tags in the name or description.

    Args:
        frontmatter: The mapping returned by :func:`parse_skill_md`.
        path: The file reported in each diagnostic (usually the ``SKILL.md``).
        dir_name: The skill directory's name, compared with ``name``; ``None``
            skips that rule.
        profile: Which rule set to apply.

    Returns:
        Every problem found, in field order, at most :data:`MAX_DIAGNOSTICS`
        (the last then counts the ones left out); empty when valid.

    Raises:
        ValueError: ``profile`` is unknown.
    """
    profile = check_profile(profile)
    found: list[Diagnostic] = []

    def add(field: str, message: str) -> None:
        found.append(Diagnostic(path, field, message))

    for message in name_problems(frontmatter.get("name"), dir_name, profile):
        add("name", message)
    for message in _description_problems(frontmatter.get("description"), profile):
        add("description", message)
    if "license" in frontmatter and not isinstance(frontmatter["license"], str):
        add("license", "must be a string")
    if "compatibility" in frontmatter:
        compatibility = frontmatter["compatibility"]
        if not isinstance(compatibility, str):
            add("compatibility", "must be a string")
        elif len(compatibility) > MAX_COMPATIBILITY_LENGTH:
            add(
                "compatibility",
                f"must be at most {MAX_COMPATIBILITY_LENGTH} characters (got {len(compatibility)})",
            )
    if "metadata" in frontmatter:
        metadata = frontmatter["metadata"]
        if not isinstance(metadata, dict):
            add("metadata", "must be a mapping of strings to strings")
        else:
            for key, value in metadata.items():
                if not isinstance(key, str):
                    add("metadata", f"keys must be strings, got {quote(key)}")
                elif not isinstance(value, str):
                    add(
                        f"metadata.{key}",
                        f"values must be strings, got {type(value).__name__} {quote(value)} "
                        "(quote it in YAML)",
                    )
    if "allowed-tools" in frontmatter and not isinstance(frontmatter["allowed-tools"], str):
        add("allowed-tools", "must be a space-separated string of tool names")
    for key in frontmatter:
        if key not in ALLOWED_FIELDS:
            allowed = ", ".join(sorted(ALLOWED_FIELDS))
            add(str(key), f"unknown field (allowed: {allowed}; put extra data in metadata)")
    if len(found) > MAX_DIAGNOSTICS:
        hidden = len(found) - MAX_DIAGNOSTICS + 1
        found[MAX_DIAGNOSTICS - 1 :] = [
            Diagnostic(path, "frontmatter", f"{hidden} more problems not shown; fix these first")
        ]
    return found
