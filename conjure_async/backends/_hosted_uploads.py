"""The hosted backend's local skills on Anthropic's side: reused, uploaded, deleted.

For each local skill :class:`~conjure_async.backends.AnthropicBackend` opens
with, :func:`upload_or_reuse` decides (under the caller's per-content lock,
see :mod:`conjure_async.backends._hosted_index`):

1. the index knows this content (:attr:`~conjure_async.skills.Skill.content_hash`)
   and the API still has that skill version: reuse it, upload nothing;
2. the index knows a skill of the same name that still exists: upload the
   content as a new version of it;
3. otherwise: create a new custom skill.

and records the outcome in the index (dropping stale entries of that name).
:func:`delete_uploads` undoes what a backend uploaded (``cleanup=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conjure_async._exceptions import NotFoundError
from conjure_async._logging import Logger
from conjure_async.anthropic._skills import SkillsClient, UploadFile
from conjure_async.backends._hosted_index import UploadIndex
from conjure_async.skills import Skill

__all__ = ["Uploaded", "delete_uploads", "upload_or_reuse"]


@dataclass(slots=True)
class Uploaded:
    """Where one local skill lives on Anthropic's side, and who put it there."""

    skill: Skill
    skill_id: str
    version: str
    created_skill: bool
    """This backend created the skill (not only a version of it)."""
    uploaded: bool
    """This backend uploaded it now (False: reused from the index)."""


async def upload_or_reuse(
    client: SkillsClient,
    index: UploadIndex,
    skill: Skill,
    files: list[UploadFile],
    log: Logger,
) -> Uploaded:
    """Reuse the skill's content from the index, or upload it; record it in the index.

    Raises:
        APIError: The Skills API failed.
    """
    key = skill.content_hash
    entries = await index.entries()
    known = entries.get(key) if key else None
    if isinstance(known, dict) and await _version_exists(
        client, str(known.get("skill_id")), str(known.get("version"))
    ):
        log.debug("anthropic.skill_reused", skill=skill.name, skill_id=known["skill_id"])
        return Uploaded(
            skill,
            known["skill_id"],
            str(known["version"]),
            created_skill=False,
            uploaded=False,
        )
    same_name = [e for e in entries.values() if isinstance(e, dict) and e.get("name") == skill.name]
    for entry in same_name:
        if await _exists(client, str(entry.get("skill_id"))):
            version = await client.versions.create(entry["skill_id"], files)
            uploaded = Uploaded(
                skill, entry["skill_id"], version.version, created_skill=False, uploaded=True
            )
            break
    else:
        created = await client.create(files, display_title=skill.name)
        uploaded = Uploaded(
            skill,
            created.id,
            created.latest_version or "latest",
            created_skill=True,
            uploaded=True,
        )

    def record(entries: dict[str, Any]) -> None:
        stale = [
            k
            for k, e in entries.items()
            if isinstance(e, dict)
            and e.get("name") == skill.name
            and e.get("skill_id") != uploaded.skill_id
        ]
        for k in stale:
            del entries[k]
        if key:
            entries[key] = {
                "skill_id": uploaded.skill_id,
                "version": uploaded.version,
                "name": skill.name,
            }

    await index.update(record)
    log.info(
        "anthropic.skill_uploaded",
        skill=skill.name,
        skill_id=uploaded.skill_id,
        version=uploaded.version,
    )
    return uploaded


async def _version_exists(client: SkillsClient, skill_id: str, version: str) -> bool:
    try:
        await client.versions.get(skill_id, version)
    except NotFoundError:
        return False
    return True


async def _exists(client: SkillsClient, skill_id: str) -> bool:
    try:
        await client.get(skill_id)
    except NotFoundError:
        return False
    return True


async def delete_uploads(
    client: SkillsClient, index: UploadIndex, uploads: list[Uploaded], log: Logger
) -> set[str]:
    """Delete what was uploaded (a created skill whole, else its version); forget it.

    A deletion that fails is logged and the others go on.

    Returns:
        The content hashes deleted (and removed from the index).
    """
    removed: set[str] = set()
    for item in uploads:
        if not item.uploaded:
            continue
        try:
            if item.created_skill:
                await client.delete_with_versions(item.skill_id)
            else:
                await client.versions.delete(item.skill_id, item.version)
            removed.add(item.skill.content_hash)
        except Exception as exc:  # noqa: BLE001 - cleanup must go on for the others
            log.warning("anthropic.skill_cleanup_failed", skill_id=item.skill_id, error=repr(exc))

    def forget(entries: dict[str, Any]) -> None:
        for key in removed:
            entries.pop(key, None)

    await index.update(forget)
    return removed
