"""The Skills API (``/v1/skills``): upload, list, get, version and delete custom skills."""

from __future__ import annotations

import builtins
import mimetypes
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx2

from conjure_async._exceptions import SkillError, SkillParseError
from conjure_async.anthropic._api import AnthropicAPI, decode_json
from conjure_async.anthropic._models import (
    Deleted,
    Page,
    SkillInfo,
    SkillVersionInfo,
    parse_as,
)
from conjure_async.skills import Diagnostic, Skill, parse_skill_md, validate_frontmatter

__all__ = [
    "MAX_SKILL_UPLOAD_BYTES",
    "SKILLS_BETA",
    "SkillVersionsClient",
    "SkillsClient",
    "UploadFile",
    "skill_upload_files",
    "upload_problems",
]

SKILLS_BETA = "skills-2025-10-02"
"""The beta header of the Skills API (still accepted after GA; keeps the beta shapes)."""

MAX_SKILL_UPLOAD_BYTES = 8 * 1024 * 1024
"""The files of one skill upload must total less than this (8 MB)."""

UploadFile = tuple[str, bytes]
"""``(path, content)``: the path is ``<skill-folder>/<relative path>``, POSIX style."""


def skill_upload_files(skill: Skill) -> builtins.list[UploadFile]:
    """Read the files of ``skill`` as the Skills API wants them.

    Every path is prefixed with the skill's top folder, which must equal its
    ``name`` (the API refuses anything else), in POSIX form: ``SKILL.md``
    becomes ``budget-builder/SKILL.md``. Blocking file I/O: call it through
    ``anyio.to_thread.run_sync`` from async code.

    Raises:
        SkillError: The files total 8 MB or more (checked before any upload).
        SkillResourceError: A file cannot be read.
    """
    relpaths = ["SKILL.md", *skill.resources.all()]
    files: builtins.list[UploadFile] = []
    total = 0
    for rel in relpaths:
        content = skill.read_resource(rel)
        total += len(content)
        if total >= MAX_SKILL_UPLOAD_BYTES:
            raise SkillError(
                f"{skill.path}: skill {skill.name!r} is too large to upload: its files total "
                f"at least {total} bytes; the Skills API accepts less than "
                f"{MAX_SKILL_UPLOAD_BYTES} bytes (8 MB)"
            )
        files.append((f"{skill.name}/{rel.replace(chr(92), '/')}", content))
    return files


def upload_problems(skill: Skill, files: Sequence[UploadFile]) -> builtins.list[Diagnostic]:
    """What the Skills API would refuse in the ``SKILL.md`` about to be uploaded.

    The ``SKILL.md`` among ``files`` (the exact bytes that would be sent) is
    validated with the ``anthropic`` profile: an ASCII ``[a-z0-9-]`` name
    without "anthropic" or "claude", a description of at most 1024
    characters, no XML tags... (:func:`~conjure_async.skills.validate_frontmatter`).
    A leniently loaded skill can break these rules. The folder name is not
    checked: the upload names the folder after the skill. Each problem's
    ``path`` names the skill and its file.
    """
    where = f"skill {skill.name!r} ({skill.skill_md})"
    content = dict(files).get(f"{skill.name}/SKILL.md")
    if content is None:
        return [Diagnostic(where, "SKILL.md", "is missing from the upload")]
    try:
        frontmatter, _, _ = parse_skill_md(content.decode("utf-8"), where)
    except UnicodeDecodeError as exc:
        return [Diagnostic(where, "SKILL.md", f"is not valid UTF-8 ({exc.reason})")]
    except SkillParseError as exc:
        return [Diagnostic(where, "frontmatter", exc.reason)]
    found = validate_frontmatter(frontmatter, path=where, profile="anthropic")
    return [
        Diagnostic(d.path, d.field, f"{d.message} (the Anthropic API refuses it)")
        for d in found
        if d.severity == "error"
    ]


def _multipart(files: Sequence[UploadFile]) -> builtins.list[tuple[str, Any]]:
    if not files:
        raise ValueError("a skill upload needs at least one file (its SKILL.md)")
    parts: builtins.list[tuple[str, Any]] = []
    for path, content in files:
        if "\\" in path:
            raise ValueError(f"skill file paths must use '/', got {path!r}")
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        parts.append(("files[]", (path, content, mime)))
    return parts


class _Base:
    def __init__(self, api: AnthropicAPI, *, beta: bool = True) -> None:
        self.api = api
        self.beta = beta

    @property
    def betas(self) -> builtins.list[str]:
        """The ``anthropic-beta`` values sent (``skills-2025-10-02`` unless ``beta=False``)."""
        return [SKILLS_BETA] if self.beta else []

    async def _json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        files: Any = None,
        data: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> tuple[Any, str | None]:
        response: httpx2.Response = await self.api.request(
            method,
            path,
            params=params,
            files=files,
            data=data,
            betas=self.betas,
            idempotent=idempotent,
        )
        return decode_json(self.api, response, what), response.headers.get("request-id")


class SkillVersionsClient(_Base):
    """The versions of custom skills (``/v1/skills/{skill_id}/versions``).

    Versions are addressed by their epoch-microseconds ``version`` with the
    beta header (the default) and by their ``id`` without it;
    :attr:`SkillVersionInfo.version` always holds the right one.
    """

    async def create(self, skill_id: str, files: Sequence[UploadFile]) -> SkillVersionInfo:
        """Upload a new version of a skill (see :func:`skill_upload_files`).

        Not retried after a connection reset, to avoid duplicate versions.
        """
        data, rid = await self._json(
            "POST",
            f"/v1/skills/{skill_id}/versions",
            "create skill version",
            files=_multipart(files),
            idempotent=False,
        )
        return parse_as(SkillVersionInfo.from_wire, data, "create skill version", rid)

    async def list_page(
        self, skill_id: str, *, limit: int | None = None, page: str | None = None
    ) -> Page[SkillVersionInfo]:
        """One page of a skill's versions."""
        data, rid = await self._json(
            "GET",
            f"/v1/skills/{skill_id}/versions",
            "list skill versions",
            params={"limit": limit, "page": page},
        )
        return _page(data, SkillVersionInfo.from_wire, "list skill versions", rid)

    async def list(
        self, skill_id: str, *, limit: int | None = None
    ) -> AsyncIterator[SkillVersionInfo]:
        """Every version of a skill, following the page cursors."""
        page: str | None = None
        while True:
            result = await self.list_page(skill_id, limit=limit, page=page)
            for item in result.data:
                yield item
            if not result.next_page:
                return
            page = result.next_page

    async def get(self, skill_id: str, version: str) -> SkillVersionInfo:
        """One version of a skill."""
        data, rid = await self._json(
            "GET", f"/v1/skills/{skill_id}/versions/{version}", "get skill version"
        )
        return parse_as(SkillVersionInfo.from_wire, data, "get skill version", rid)

    async def delete(self, skill_id: str, version: str) -> Deleted:
        """Delete one version of a skill."""
        data, rid = await self._json(
            "DELETE", f"/v1/skills/{skill_id}/versions/{version}", "delete skill version"
        )
        return parse_as(Deleted.from_wire, data, "delete skill version", rid)


class SkillsClient(_Base):
    """The Skills API: custom skills uploaded to your workspace.

    ::

        async with AnthropicAPI() as api:
            skills = SkillsClient(api)
            created = await skills.create_from_skill(load_skill("skills/budget-builder"))
            async for info in skills.list(source="custom"):
                print(info.id, info.display_title, info.latest_version)
            await skills.delete_with_versions(created.id)

    Args:
        api: The HTTP layer (shares its retries, timeouts and connection pool).
        beta: Send ``anthropic-beta: skills-2025-10-02`` (the default). Either
            way both response shapes are understood.

    Attributes:
        versions: The versions sub-client.
    """

    def __init__(self, api: AnthropicAPI, *, beta: bool = True) -> None:
        super().__init__(api, beta=beta)
        self.versions = SkillVersionsClient(api, beta=beta)

    async def create(
        self, files: Sequence[UploadFile], *, display_title: str | None = None
    ) -> SkillInfo:
        """Upload a new custom skill from ``(path, content)`` pairs.

        Each part is sent as ``files[]`` with its path as the filename; the
        paths must share one top folder named like the skill, holding its
        ``SKILL.md``. Not retried after a connection reset, to avoid duplicates.

        Raises:
            BadRequestError: The API refused the files (wrong folder, too large...).
        """
        fields: dict[str, Any] | None = None
        if display_title is not None:
            fields = {"display_title" if self.beta else "display_name": display_title}
        data, rid = await self._json(
            "POST",
            "/v1/skills",
            "create skill",
            files=_multipart(files),
            data=fields,
            idempotent=False,
        )
        return parse_as(SkillInfo.from_wire, data, "create skill", rid)

    async def create_from_skill(
        self, skill: Skill, *, display_title: str | None = None
    ) -> SkillInfo:
        """Upload a loaded :class:`~conjure_async.skills.Skill` as a new custom skill.

        Raises:
            SkillError: Its files total 8 MB or more (nothing is sent).
        """
        files = await anyio.to_thread.run_sync(skill_upload_files, skill)
        return await self.create(files, display_title=display_title)

    async def list_page(
        self, *, source: str | None = None, limit: int | None = None, page: str | None = None
    ) -> Page[SkillInfo]:
        """One page of skills (``source``: ``custom`` or ``anthropic``)."""
        data, rid = await self._json(
            "GET",
            "/v1/skills",
            "list skills",
            params={"source": source, "limit": limit, "page": page},
        )
        return _page(data, SkillInfo.from_wire, "list skills", rid)

    async def list(
        self, *, source: str | None = None, limit: int | None = None
    ) -> AsyncIterator[SkillInfo]:
        """Every skill, following the page cursors."""
        page: str | None = None
        while True:
            result = await self.list_page(source=source, limit=limit, page=page)
            for item in result.data:
                yield item
            if not result.next_page:
                return
            page = result.next_page

    async def get(self, skill_id: str) -> SkillInfo:
        """One skill.

        Raises:
            NotFoundError: No such skill in this workspace.
        """
        data, rid = await self._json("GET", f"/v1/skills/{skill_id}", "get skill")
        return parse_as(SkillInfo.from_wire, data, "get skill", rid)

    async def delete(self, skill_id: str) -> Deleted:
        """Delete a skill that has no versions left (the API refuses otherwise).

        Raises:
            BadRequestError: The skill still has versions.
        """
        data, rid = await self._json("DELETE", f"/v1/skills/{skill_id}", "delete skill")
        return parse_as(Deleted.from_wire, data, "delete skill", rid)

    async def delete_with_versions(self, skill_id: str) -> Deleted:
        """Delete every version of a skill, then the skill."""
        versions = [v async for v in self.versions.list(skill_id)]
        for version in versions:
            await self.versions.delete(skill_id, version.version)
        return await self.delete(skill_id)


def _page(data: Any, factory: Any, what: str, request_id: str | None) -> Page[Any]:
    def build(raw: Any) -> Page[Any]:
        items = [factory(item) for item in raw["data"]]
        cursor = raw.get("next_page")
        return Page(data=items, next_page=cursor if isinstance(cursor, str) else None)

    return parse_as(build, data, what, request_id)
