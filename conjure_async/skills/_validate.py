"""Validation of ``SKILL.md`` frontmatter against the Agent Skills specification."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from conjure_async.skills._model import Diagnostic

__all__ = [
    "ALLOWED_FIELDS",
    "MAX_COMPATIBILITY_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "Profile",
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


def _name_problems(name: object, dir_name: str | None, profile: Profile) -> list[str]:
    if not isinstance(name, str):
        return ["is required and must be a string" if name is None else "must be a string"]
    normal = unicodedata.normalize("NFKC", name)
    problems: list[str] = []
    if not 1 <= len(normal) <= MAX_NAME_LENGTH:
        problems.append(f"must be 1-{MAX_NAME_LENGTH} characters (got {len(normal)})")
    bad = sorted({ch for ch in normal if not (ch.islower() or ch.isdigit() or ch == "-")})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        problems.append(f"may contain only lowercase letters, digits and hyphens (found {shown})")
    if normal.startswith("-") or normal.endswith("-"):
        problems.append("must not start or end with a hyphen")
    if "--" in normal:
        problems.append("must not contain consecutive hyphens ('--')")
    if dir_name is not None and unicodedata.normalize("NFKC", dir_name) != normal:
        problems.append(f"{name!r} must match the skill directory name {dir_name!r}")
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

    Rules (``agentskills`` profile): ``name`` is required, 1-64 characters
    after NFKC normalisation, only lowercase letters (any script with case,
    ``str.islower``), digits and hyphens, no leading, trailing or doubled
    hyphen, and equal to the directory name; ``description`` is a non-empty
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
        Every problem found, in field order; empty when valid.

    Raises:
        ValueError: ``profile`` is unknown.
    """
    profile = check_profile(profile)
    found: list[Diagnostic] = []

    def add(field: str, message: str) -> None:
        found.append(Diagnostic(path, field, message))

    for message in _name_problems(frontmatter.get("name"), dir_name, profile):
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
                    add("metadata", f"keys must be strings, got {key!r}")
                elif not isinstance(value, str):
                    add(
                        f"metadata.{key}",
                        f"values must be strings, got {type(value).__name__} {value!r} "
                        "(quote it in YAML)",
                    )
    if "allowed-tools" in frontmatter and not isinstance(frontmatter["allowed-tools"], str):
        add("allowed-tools", "must be a space-separated string of tool names")
    for key in frontmatter:
        if key not in ALLOWED_FIELDS:
            allowed = ", ".join(sorted(ALLOWED_FIELDS))
            add(str(key), f"unknown field (allowed: {allowed}; put extra data in metadata)")
    return found
