"""The fake Skills API: skills and their versions in memory, uploads checked like the API's."""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conjure_async.testing._fake._http import (
    HTTPError,
    MultipartPart,
    RecordedRequest,
    Responder,
    now,
)
from conjure_async.testing._fake._paging import cursor_page, first

__all__ = ["MAX_SKILL_BYTES", "PREBUILT_SKILLS", "SKILLS_BETA", "SkillStore"]

SKILLS_BETA = "skills-2025-10-02"
"""With this beta header the answers have the beta shapes; without, the post-GA ones."""
MAX_SKILL_BYTES = 8 * 1024 * 1024
PREBUILT_SKILLS = {
    "xlsx": "Create, edit and analyze Excel spreadsheets",
    "pptx": "Create and edit PowerPoint presentations",
    "docx": "Create and edit Word documents",
    "pdf": "Create, fill and analyze PDF documents",
}


@dataclass(slots=True)
class _Version:
    id: str
    version: str
    skill_id: str
    name: str
    description: str
    directory: str
    created_at: str
    files: dict[str, bytes]

    def wire(self, *, beta: bool) -> dict[str, Any]:
        base = {
            "id": self.id,
            "type": "skill_version",
            "skill_id": self.skill_id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
        }
        if beta:
            base.update(version=self.version, directory=self.directory)
        return base


@dataclass(slots=True)
class _Skill:
    id: str
    title: str | None
    source: str
    created_at: str
    updated_at: str
    versions: dict[str, _Version] = field(default_factory=dict)

    @property
    def latest(self) -> _Version | None:
        return list(self.versions.values())[-1] if self.versions else None

    def wire(self, *, beta: bool) -> dict[str, Any]:
        latest = self.latest
        if beta:
            return {
                "id": self.id,
                "type": "skill",
                "display_title": self.title,
                "latest_version": latest.version if latest else None,
                "source": self.source,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }
        return {
            "id": self.id,
            "type": "skill",
            "display_name": self.title,
            "latest_version_id": latest.id if latest else None,
            "source": {"type": self.source},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def find(self, ref: str) -> _Version:
        for version in self.versions.values():
            if ref in (version.version, version.id):
                return version
        if ref == "latest" and self.latest is not None:
            return self.latest
        raise HTTPError(404, f"skill version {ref!r} of {self.id} not found")


class SkillStore:
    """The skills (the pre-built ones from the start) and what ``/v1/skills...`` does to them.

    Args:
        ids: The server's counter, shared by every id it makes.
    """

    def __init__(self, ids: itertools.count[int]) -> None:
        self._ids = ids
        self._skills: dict[str, _Skill] = {
            skill_id: _Skill(skill_id, skill_id, "anthropic", now(), now())
            for skill_id in PREBUILT_SKILLS
        }
        self._version_clock = itertools.count(1759178010641129)
        self.created = 0
        """How many skills were created through the API."""

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._skills

    @property
    def custom_ids(self) -> list[str]:
        """The ids of the custom skills stored."""
        return [s.id for s in self._skills.values() if s.source == "custom"]

    def versions(self, skill_id: str) -> list[str]:
        """The versions of a stored skill, oldest first (raises ``KeyError`` when unknown)."""
        return [v.version for v in self._skills[skill_id].versions.values()]

    def files(self, skill_id: str, version: str = "latest") -> dict[str, bytes]:
        """The files of an uploaded skill version, by the path they were sent with."""
        return dict(self._skills[skill_id].find(version).files)

    async def route(self, request: RecordedRequest, out: Responder) -> None:
        """Answer a request to ``/v1/skills...`` (raises :class:`HTTPError` for a bad one)."""
        method, path = request.method, request.path.rstrip("/")
        beta = SKILLS_BETA in request.betas
        if path == "/v1/skills":
            if method == "POST":
                await out.json(self._create(request, beta=beta))
            elif method == "GET":
                await out.json(self._list(request, beta=beta))
            else:
                raise HTTPError(405, f"{method} not allowed")
        elif match := re.fullmatch(r"/v1/skills/([^/]+)", path):
            await out.json(self._one(method, match.group(1), beta=beta))
        elif match := re.fullmatch(r"/v1/skills/([^/]+)/versions", path):
            skill = self._get(match.group(1))
            if method == "POST":
                await out.json(self._add_version(skill, request.parts).wire(beta=beta))
            else:
                versions = [v.wire(beta=beta) for v in skill.versions.values()]
                await out.json(cursor_page(versions, request.query))
        elif match := re.fullmatch(r"/v1/skills/([^/]+)/versions/([^/]+)(/content)?", path):
            skill = self._get(match.group(1))
            version = skill.find(match.group(2))
            if match.group(3):
                await out.raw(200, _zip(version.files), "application/zip")
            elif method == "DELETE":
                del skill.versions[version.version]
                ref = version.version if beta else version.id
                await out.json({"id": ref, "type": "skill_version_deleted"})
            else:
                await out.json(version.wire(beta=beta))
        else:
            raise HTTPError(404, f"{method} {path}: no such endpoint in the fake server")

    def _get(self, skill_id: str) -> _Skill:
        skill = self._skills.get(skill_id)
        if skill is None:
            raise HTTPError(404, f"skill {skill_id!r} not found")
        return skill

    def _one(self, method: str, skill_id: str, *, beta: bool) -> dict[str, Any]:
        skill = self._get(skill_id)
        if method == "DELETE":
            if skill.versions:
                raise HTTPError(
                    400, "cannot delete a skill with existing versions; delete every version first"
                )
            del self._skills[skill_id]
            return {"id": skill_id, "type": "skill_deleted"}
        return skill.wire(beta=beta)

    def _add_version(self, skill: _Skill, parts: list[MultipartPart]) -> _Version:
        files = {
            p.filename: p.content for p in parts if p.name in ("files[]", "files") and p.filename
        }
        top, name, description = _check_upload(files)
        stamp = str(next(self._version_clock))
        version = _Version(
            id=f"skillver_fake{next(self._ids):06d}",
            version=stamp,
            skill_id=skill.id,
            name=name,
            description=description,
            directory=top,
            created_at=now(),
            files=files,
        )
        skill.versions[stamp] = version
        skill.updated_at = version.created_at
        if skill.title is None:
            skill.title = name
        return version

    def _create(self, request: RecordedRequest, *, beta: bool) -> dict[str, Any]:
        parts = request.parts
        fields = {p.name: p.content.decode("utf-8", "replace") for p in parts if p.filename is None}
        title = fields.get("display_title") or fields.get("display_name")
        skill = _Skill(f"skill_fake{next(self._ids):06d}", title or None, "custom", now(), now())
        self._add_version(skill, parts)  # validates before the skill exists
        self._skills[skill.id] = skill
        self.created += 1
        return skill.wire(beta=beta)

    def _list(self, request: RecordedRequest, *, beta: bool) -> dict[str, Any]:
        source = first(request.query, "source")
        skills = [
            s.wire(beta=beta) for s in self._skills.values() if source is None or s.source == source
        ]
        return cursor_page(skills, request.query)


def _check_upload(files: Mapping[str, bytes]) -> tuple[str, str, str]:
    """The Skills API's checks of an upload; its folder, name and description (400 if bad)."""
    if not files:
        raise HTTPError(400, "files: at least one file is required")
    if any("\\" in path for path in files):
        raise HTTPError(400, "Skill contains path with invalid characters")
    if sum(len(c) for c in files.values()) >= MAX_SKILL_BYTES:
        raise HTTPError(400, "the skill's files must total less than 8 MB")
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) != 1 or any("/" not in path for path in files):
        raise HTTPError(400, "SKILL.md file must be exactly in the top-level folder.")
    top = tops.pop()
    skill_md = files.get(f"{top}/SKILL.md")
    if skill_md is None:
        raise HTTPError(400, "SKILL.md file must be exactly in the top-level folder.")
    meta = _frontmatter(skill_md.decode("utf-8", "replace"))
    name = meta.get("name", "")
    if name != top:
        raise HTTPError(
            400, f"The folder name '{top}' must match the skill name '{name}' in SKILL.md."
        )
    description = meta.get("description", "")
    _check_frontmatter(name, description)
    return top, name, description


def _frontmatter(text: str) -> dict[str, str]:
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.DOTALL)
    if match is None:
        return {}
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def _check_frontmatter(name: str, description: str) -> None:
    """The Skills API's rules for ``name`` and ``description`` (400 when broken)."""
    if not re.fullmatch(r"[a-z0-9-]{1,64}", name):
        raise HTTPError(400, "name: at most 64 characters, only lowercase letters, digits, '-'")
    for word in ("anthropic", "claude"):
        if word in name:
            raise HTTPError(400, f"name: must not contain the reserved word '{word}'")
    if not 1 <= len(description) <= 1024:
        raise HTTPError(400, "description: must be 1-1024 characters")
    if re.search(r"<\s*/?\s*[A-Za-z_][^<>]*>", description):
        raise HTTPError(400, "description: must not contain XML tags")


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in sorted(files.items()):
            archive.writestr(path, content)
    return buffer.getvalue()
