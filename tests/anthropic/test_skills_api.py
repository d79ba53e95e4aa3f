"""The Skills API client against the fake server: uploads, pages, versions, shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conjure_async._exceptions import APIError, BadRequestError, NotFoundError, SkillError
from conjure_async.anthropic import (
    AnthropicAPI,
    SkillInfo,
    SkillsClient,
    SkillVersionInfo,
    skill_upload_files,
)
from conjure_async.testing import FakeAnthropicServer, MalformedJSON
from tests.anthropic.skill_factory import make_skill

pytestmark = pytest.mark.anyio


async def test_create_sends_each_file_as_files_part_under_the_skill_folder(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    skill = make_skill(tmp_path)

    await SkillsClient(api).create_from_skill(skill, display_title="Budget Builder")

    parts = server.requests_to("/v1/skills", "POST")[0].parts
    assert [(p.name, p.filename) for p in parts] == [
        ("display_title", None),
        ("files[]", "budget-builder/SKILL.md"),
        ("files[]", "budget-builder/scripts/run.py"),
    ]
    assert parts[2].content == b"print('hi')\n"


async def test_create_sends_the_skills_beta_header(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    await SkillsClient(api).create_from_skill(make_skill(tmp_path))

    assert server.requests_to("/v1/skills")[0].betas == ["skills-2025-10-02"]


async def test_create_returns_the_skill_in_the_beta_shape(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    created = await SkillsClient(api).create_from_skill(make_skill(tmp_path))

    assert created.id.startswith("skill_fake")
    assert created.source == "custom"
    assert created.display_title == "budget-builder"
    assert created.latest_version is not None
    assert created.raw["latest_version"] == created.latest_version


async def test_ga_shape_is_understood_without_the_beta_header(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    client = SkillsClient(api, beta=False)

    created = await client.create_from_skill(make_skill(tmp_path), display_title="Budget")
    version = await client.versions.get(created.id, created.latest_version or "")

    assert "anthropic-beta" not in server.requests_to("/v1/skills")[0].headers
    assert created.raw["display_name"] == created.display_title == "Budget"
    assert created.raw["source"] == {"type": "custom"}
    assert version.version == version.id == created.latest_version


def test_both_shapes_read_the_same() -> None:
    beta = SkillInfo.from_wire(
        {"id": "s", "display_title": "T", "latest_version": "1", "source": "custom"}
    )
    ga = SkillInfo.from_wire(
        {"id": "s", "display_name": "T", "latest_version_id": "1", "source": {"type": "custom"}}
    )

    assert beta.model_dump(exclude={"raw"}) == ga.model_dump(exclude={"raw"})


def test_version_without_version_field_is_addressed_by_id() -> None:
    assert SkillVersionInfo.from_wire({"id": "skillver_1", "skill_id": "s"}).version == "skillver_1"


async def test_list_follows_page_cursors(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    client = SkillsClient(api)
    for n in range(3):
        await client.create_from_skill(make_skill(tmp_path, f"skill-{n}"))

    listed = [s.display_title async for s in client.list(source="custom", limit=2)]

    assert listed == ["skill-0", "skill-1", "skill-2"]
    pages = [r.query.get("page") for r in server.requests_to("/v1/skills", "GET")]
    assert pages == [None, ["page_2"]]


async def test_list_of_anthropic_skills(api: AnthropicAPI) -> None:
    ids = [s.id async for s in SkillsClient(api).list(source="anthropic")]

    assert ids == ["xlsx", "pptx", "docx", "pdf"]


async def test_get_unknown_skill_raises_not_found(api: AnthropicAPI) -> None:
    with pytest.raises(NotFoundError):
        await SkillsClient(api).get("skill_missing")


async def test_versions_create_list_get_delete(api: AnthropicAPI, tmp_path: Path) -> None:
    client = SkillsClient(api)
    skill = make_skill(tmp_path)
    created = await client.create_from_skill(skill)

    added = await client.versions.create(created.id, skill_upload_files(skill))
    listed = [v.version async for v in client.versions.list(created.id)]
    fetched = await client.versions.get(created.id, added.version)
    deleted = await client.versions.delete(created.id, added.version)

    assert listed == [created.latest_version, added.version]
    assert (fetched.name, fetched.directory) == ("budget-builder", "budget-builder")
    assert (deleted.id, deleted.type) == (added.version, "skill_version_deleted")


async def test_delete_with_versions_removes_versions_then_skill(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    client = SkillsClient(api)
    created = await client.create_from_skill(make_skill(tmp_path))

    deleted = await client.delete_with_versions(created.id)

    deletes = [r.path for r in server.requests_to("/v1/skills", "DELETE")]
    assert deletes == [
        f"/v1/skills/{created.id}/versions/{created.latest_version}",
        f"/v1/skills/{created.id}",
    ]
    assert deleted.type == "skill_deleted"
    assert server.custom_skill_ids == []


async def test_deleting_a_skill_with_versions_is_refused(api: AnthropicAPI, tmp_path: Path) -> None:
    client = SkillsClient(api)
    created = await client.create_from_skill(make_skill(tmp_path))

    with pytest.raises(BadRequestError, match="versions"):
        await client.delete(created.id)


async def test_folder_must_match_the_skill_name(api: AnthropicAPI) -> None:
    files = [("skills/SKILL.md", b"---\nname: my-skill\ndescription: d\n---\n")]

    with pytest.raises(BadRequestError, match="must match"):
        await SkillsClient(api).create(files)


def test_too_large_skill_fails_before_upload(tmp_path: Path) -> None:
    skill = make_skill(tmp_path, extra={"assets/big.bin": b"\0" * (8 * 1024 * 1024)})

    with pytest.raises(SkillError, match="8 MB"):
        skill_upload_files(skill)


async def test_malformed_json_is_a_clear_api_error(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    server.inject(MalformedJSON(), path="/v1/skills")

    with pytest.raises(APIError, match="not valid JSON"):
        await SkillsClient(api).get("xlsx")


async def test_wrong_shape_is_a_clear_api_error(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    server.inject(MalformedJSON(body="[1, 2]"), path="/v1/skills")

    with pytest.raises(APIError, match="unexpected response"):
        await SkillsClient(api).get("xlsx")
