"""The ``<available_skills>`` block that tells the model which skills exist."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from conjure_async.skills._model import Skill

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "DEFAULT_READ_WITH",
    "SkillListing",
    "SkillPromptEntry",
    "available_skills_block",
    "estimate_tokens",
    "network_note",
    "skills_instructions",
]

DEFAULT_READ_WITH = "(at its location) with the view tool"
"""How a skill's ``SKILL.md`` is read unless its listing says otherwise (Local, Docker)."""

_INTRO = (
    "You have access to the skills listed below. Each skill is a folder of "
    "instructions, scripts and resources for a kind of task, described by its "
    "name and description. "
)
_FIRST_READ = "When a task matches a skill's description, first read that skill's SKILL.md"
_THEN = "then follow its instructions; open the other files it mentions only when you need them."

DEFAULT_INSTRUCTIONS = f"{_INTRO}{_FIRST_READ} {DEFAULT_READ_WITH}, {_THEN}"
"""The usage paragraph placed before the block when ``instructions=True`` and every
skill is read the default way (:data:`DEFAULT_READ_WITH`)."""

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


@dataclasses.dataclass(frozen=True, slots=True)
class SkillListing:
    """What the model sees of one skill before it reads ``SKILL.md``."""

    name: str
    """The skill's name."""
    description: str
    """What it does and when to use it."""
    location: str | None = None
    """Where the model can read its ``SKILL.md`` (as the backend sees it), if anywhere."""
    read_with: str | None = None
    """How the model reads this skill's ``SKILL.md`` with the tools its backend
    offers, completing "first read that skill's SKILL.md ...": ``None`` is
    :data:`DEFAULT_READ_WITH` for a listing with a location (the ``view``
    tool), and nothing to read for one without (a native skill)."""

    @classmethod
    def from_skill(cls, skill: Skill, location: str | None = None) -> SkillListing:
        """Describe ``skill``; ``location`` defaults to the path of its ``SKILL.md``."""
        return cls(skill.name, skill.description, location or str(skill.skill_md))


SkillPromptEntry = Skill | SkillListing | tuple[Skill | SkillListing | tuple[str, str], str | None]
"""One entry of :func:`available_skills_block`: a skill, a listing, or
``(skill_or_listing_or_(name, description), location)``."""


def _listing(entry: SkillPromptEntry) -> SkillListing:
    if isinstance(entry, SkillListing):
        return entry
    if isinstance(entry, Skill):
        return SkillListing.from_skill(entry)
    if isinstance(entry, tuple) and len(entry) == 2:
        what, location = entry
        if isinstance(what, Skill):
            return SkillListing(what.name, what.description, location)
        if isinstance(what, SkillListing):
            return dataclasses.replace(what, location=location)
        if isinstance(what, tuple) and len(what) == 2:
            name, description = what
            return SkillListing(str(name), str(description), location)
    raise TypeError(
        "expected a Skill, a SkillListing or (skill_or_(name, description), location), "
        f"got {entry!r}"
    )


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def skills_instructions(listings: Iterable[SkillListing]) -> str:
    """The usage paragraph for these skills, saying how each is read.

    Each backend's listings say how their ``SKILL.md`` is read with the tools
    that backend offers (:attr:`SkillListing.read_with`): the Local and Docker
    backends with the ``view`` tool at the location, the hosted backend inside
    its code execution container. When every skill is read the same way the
    paragraph has one sentence for it (:data:`DEFAULT_INSTRUCTIONS` for the
    ``view`` tool); otherwise one line per way, naming its skills.
    """
    groups: dict[str, list[str]] = {}
    for listing in listings:
        how = listing.read_with or (DEFAULT_READ_WITH if listing.location is not None else None)
        if how is not None:
            groups.setdefault(how, []).append(listing.name)
    if not groups:
        return DEFAULT_INSTRUCTIONS
    if len(groups) == 1:
        (how,) = groups
        return f"{_INTRO}{_FIRST_READ} {how}, {_THEN}"
    lines = [f"{_INTRO}{_FIRST_READ}, {_THEN} How to read a SKILL.md:"]
    lines += [f"- {', '.join(names)}: read it {how}." for how, names in groups.items()]
    return "\n".join(lines)


def available_skills_block(
    entries: Iterable[SkillPromptEntry],
    *,
    instructions: bool | str = True,
) -> str:
    """Render the ``<available_skills>`` block of the system prompt.

    Each skill becomes ``<skill>`` with ``<name>``, ``<description>`` and,
    when known, ``<location>``; every value is XML-escaped (``& < > " '``)::

        <available_skills>
        <skill>
        <name>log-analyzer</name>
        <description>Summarize application logs...</description>
        <location>/skills/log-analyzer/SKILL.md</location>
        </skill>
        </available_skills>

    Args:
        entries: Skills (location: their ``SKILL.md``), :class:`SkillListing`
            objects, or ``(skill_or_listing_or_(name, description), location)``
            tuples where ``location`` may be ``None`` to omit it.
        instructions: ``True`` puts the usage paragraph and a blank line
            before the block (:func:`skills_instructions`: how each skill's
            ``SKILL.md`` is read, :data:`DEFAULT_INSTRUCTIONS` when all use the
            ``view`` tool); a string puts that text instead; ``False`` renders
            the block alone.

    Returns:
        The text to add to the system prompt.

    Raises:
        TypeError: An entry has none of the accepted shapes.
    """
    listings = [_listing(entry) for entry in entries]
    lines = ["<available_skills>"]
    for listing in listings:
        lines += [
            "<skill>",
            f"<name>{_escape(listing.name)}</name>",
            f"<description>{_escape(listing.description)}</description>",
        ]
        if listing.location is not None:
            lines.append(f"<location>{_escape(listing.location)}</location>")
        lines.append("</skill>")
    lines.append("</available_skills>")
    block = "\n".join(lines)
    if instructions is True:
        return f"{skills_instructions(listings)}\n\n{block}"
    if isinstance(instructions, str) and instructions:
        return f"{instructions}\n\n{block}"
    return block


def network_note(destinations: Iterable[str]) -> str:
    """The system prompt's line saying which hosts a sandbox with an egress policy may reach."""
    shown = ", ".join(destinations) or "none"
    return (
        "Network access goes through an HTTP(S) proxy that is already configured "
        "(HTTP_PROXY/HTTPS_PROXY); only these destinations are reachable (ports 80 and 443 "
        f"unless one is given): {shown}. Anything else is refused with HTTP 403, and programs "
        "that ignore the proxy settings (raw sockets, ssh, DNS lookups) cannot connect."
    )


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: characters divided by four, rounded up."""
    return math.ceil(len(text) / 4)
