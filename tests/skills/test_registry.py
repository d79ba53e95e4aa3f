"""SkillRegistry: lookups, registration, atomic reloads and the file watcher."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from conjure_async._exceptions import SkillNotFoundError, SkillValidationError
from conjure_async.skills import SkillRegistry, load_skill

MakeSkill = Callable[..., Path]

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(make_skill: MakeSkill, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name in ("pdf-read", "pdf-write", "xlsx"):
        make_skill(name, root=root)
    return root


def names(registry: SkillRegistry) -> list[str]:
    return [s.name for s in registry.list()]


async def wait_for_generation(registry: SkillRegistry, above: int) -> None:
    with anyio.fail_after(5):
        while registry.generation <= above:  # noqa: ASYNC110 - polls the watcher's counter
            await anyio.sleep(0.01)


async def test_from_paths_loads_the_skills_sorted_by_name(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    assert names(registry) == ["pdf-read", "pdf-write", "xlsx"]
    assert registry.paths == (root,)
    assert len(registry) == 3
    assert "xlsx" in registry


async def test_get_returns_the_skill(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    assert registry.get("xlsx").path == root / "xlsx"


async def test_get_of_an_unknown_name_is_skill_not_found(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    with pytest.raises(SkillNotFoundError, match="no skill named 'docx'"):
        registry.get("docx")


async def test_skill_not_found_is_also_a_key_error(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    with pytest.raises(KeyError):
        registry.get("docx")


async def test_find_matches_a_glob(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    assert [s.name for s in registry.find("pdf-*")] == ["pdf-read", "pdf-write"]
    assert registry.find("doc*") == []


async def test_add_path_loads_more_skills(
    root: Path, make_skill: MakeSkill, tmp_path: Path
) -> None:
    registry = await SkillRegistry.from_paths(root)
    extra = make_skill("docx", root=tmp_path / "more")
    await registry.add_path(extra)
    assert names(registry) == ["docx", "pdf-read", "pdf-write", "xlsx"]


async def test_add_path_with_an_invalid_skill_raises_and_adds_nothing(
    root: Path, make_skill: MakeSkill, tmp_path: Path
) -> None:
    registry = await SkillRegistry.from_paths(root)
    bad = make_skill("bad", root=tmp_path / "more", description="")
    with pytest.raises(SkillValidationError):
        await registry.add_path(bad)
    assert registry.paths == (root,)
    assert names(registry) == ["pdf-read", "pdf-write", "xlsx"]


async def test_lenient_registry_keeps_diagnostics(make_skill: MakeSkill, tmp_path: Path) -> None:
    bad = make_skill("bad", root=tmp_path / "r", dirname="elsewhere")
    registry = await SkillRegistry.from_paths(bad, lenient=True)
    assert names(registry) == ["bad"]
    assert [d.field for d in registry.diagnostics] == ["name"]


async def test_reload_picks_up_added_and_removed_skills(root: Path, make_skill: MakeSkill) -> None:
    registry = await SkillRegistry.from_paths(root)
    make_skill("docx", root=root)
    (root / "xlsx" / "SKILL.md").unlink()
    await registry.reload()
    assert names(registry) == ["docx", "pdf-read", "pdf-write"]


async def test_registered_skills_are_kept_across_reloads(
    root: Path, make_skill: MakeSkill, tmp_path: Path
) -> None:
    registry = await SkillRegistry.from_paths(root)
    registry.register(load_skill(make_skill("custom", root=tmp_path / "elsewhere")))
    await registry.reload()
    assert names(registry) == ["custom", "pdf-read", "pdf-write", "xlsx"]


async def test_constructor_skills_are_registered(make_skill: MakeSkill) -> None:
    registry = SkillRegistry([load_skill(make_skill("custom"))])
    await registry.reload()
    assert names(registry) == ["custom"]


async def test_a_registered_skill_wins_over_a_loaded_one(
    root: Path, make_skill: MakeSkill, tmp_path: Path
) -> None:
    registry = await SkillRegistry.from_paths(root)
    mine = load_skill(make_skill("xlsx", root=tmp_path / "mine", description="Mine."))
    registry.register(mine)
    await registry.reload()
    assert registry.get("xlsx") is mine


async def test_failed_strict_reload_keeps_the_previous_skills(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    before = registry.list()
    (root / "xlsx" / "SKILL.md").write_text("no frontmatter")
    with pytest.raises(SkillValidationError):
        await registry.reload()
    assert registry.list() == before


async def test_reloads_and_reads_interleave_without_partial_states(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    roots = [tmp_path / f"root{i}" for i in range(3)]
    expected = []
    for i, root in enumerate(roots):
        for j in range(4):
            expected.append(make_skill(f"s{i}-{j}", root=root).name)
    registry = await SkillRegistry.from_paths(*roots)
    seen: list[list[str]] = []

    async def reload_many() -> None:
        for _ in range(10):
            await registry.reload()

    async def read_many() -> None:
        for _ in range(200):
            seen.append(names(registry))
            assert registry.get("s2-3").name == "s2-3"
            await anyio.lowlevel.checkpoint()

    start = registry.generation
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(reload_many)
        for _ in range(4):
            tg.start_soon(read_many)
    assert registry.generation == start + 40
    assert len(seen) == 800
    assert all(observed == sorted(expected) for observed in seen)


async def test_watch_reloads_when_a_file_changes(root: Path, make_skill: MakeSkill) -> None:
    registry = await SkillRegistry.from_paths(root)
    async with registry.watch(interval=0.02):
        start = registry.generation
        make_skill("docx", root=root)
        await wait_for_generation(registry, start)
    assert "docx" in registry


async def test_watch_reloads_when_a_skill_md_is_edited(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    async with registry.watch(interval=0.02):
        start = registry.generation
        (root / "xlsx" / "SKILL.md").write_text(
            "---\nname: xlsx\ndescription: Edited description.\n---\nBody\n"
        )
        await wait_for_generation(registry, start)
    assert registry.get("xlsx").description == "Edited description."


async def test_watch_does_not_reload_without_changes(root: Path) -> None:
    registry = await SkillRegistry.from_paths(root)
    async with registry.watch(interval=0.01):
        start = registry.generation
        await anyio.sleep(0.15)
        assert registry.generation == start


async def test_watcher_survives_an_invalid_edit_and_keeps_the_old_skills(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = await SkillRegistry.from_paths(root)
    before = registry.list()
    with caplog.at_level(logging.WARNING, logger="conjure_async.skills"):
        async with registry.watch(interval=0.02):
            (root / "xlsx" / "SKILL.md").write_text("broken")
            with anyio.fail_after(5):
                while not caplog.records:  # noqa: ASYNC110 - waits for the watcher's log record
                    await anyio.sleep(0.01)
            start = registry.generation
            (root / "xlsx" / "SKILL.md").write_text(
                "---\nname: xlsx\ndescription: Fixed.\n---\nBody\n"
            )
            await wait_for_generation(registry, start)
    assert "reloading failed" in caplog.records[0].getMessage()
    assert [s.name for s in before] == names(registry)
    assert registry.get("xlsx").description == "Fixed."


async def test_watch_forever_runs_until_cancelled(root: Path, make_skill: MakeSkill) -> None:
    registry = await SkillRegistry.from_paths(root)
    async with anyio.create_task_group() as tg:
        await tg.start(registry.watch_forever, 0.02)
        start = registry.generation
        make_skill("docx", root=root)
        await wait_for_generation(registry, start)
        tg.cancel_scope.cancel()
    assert "docx" in registry


async def test_watch_sees_an_edit_that_keeps_the_size_and_the_modification_time(
    root: Path,
) -> None:
    """An edit is seen even when size and mtime stay the same (a scan of stats misses it)."""
    registry = await SkillRegistry.from_paths(root)
    skill_md = root / "xlsx" / "SKILL.md"
    async with registry.watch(interval=0.02):
        start = registry.generation
        before = skill_md.stat()
        text = skill_md.read_text()
        edited = text.replace("Does demo things.", "Does xlsx things.")
        assert len(edited) == len(text)
        assert edited != text
        skill_md.write_text(edited)
        os.utime(skill_md, ns=(before.st_atime_ns, before.st_mtime_ns))
        await wait_for_generation(registry, start)
    assert registry.get("xlsx").description.startswith("Does xlsx things.")


async def test_watch_follows_a_path_added_while_watching(
    root: Path, make_skill: MakeSkill, tmp_path: Path
) -> None:
    """A path added inside ``watch()`` is watched too."""
    registry = await SkillRegistry.from_paths(root)
    more = tmp_path / "more"
    make_skill("docx", root=more)
    async with registry.watch(interval=0.02):
        await registry.add_path(more)
        start = registry.generation
        make_skill("pptx", root=more)
        await wait_for_generation(registry, start)
    assert names(registry) == ["docx", "pdf-read", "pdf-write", "pptx", "xlsx"]


async def test_watch_sees_a_replaced_skill_package(
    make_zip: Callable[..., Path], skill_text: Callable[..., str]
) -> None:
    """A ``.skill`` file replaced by another (``mv`` over it) is reloaded."""
    package = make_zip({"demo-skill/SKILL.md": skill_text(description="First. Use it.")})
    registry = await SkillRegistry.from_paths(package)
    async with registry.watch(interval=0.02):
        start = registry.generation
        newer = make_zip(
            {"demo-skill/SKILL.md": skill_text(description="Second. Use it.")}, name="new.zip"
        )
        newer.replace(package)
        await wait_for_generation(registry, start)
    assert registry.get("demo-skill").description == "Second. Use it."


async def test_watch_sees_a_skills_folder_deleted_and_made_again(
    root: Path, make_skill: MakeSkill
) -> None:
    """A watched folder removed and created anew is followed (its new files are seen)."""
    registry = await SkillRegistry.from_paths(root)
    async with registry.watch(interval=0.02):
        shutil.rmtree(root)
        make_skill("docx", root=root)
        with anyio.fail_after(5):
            while names(registry) != ["docx"]:  # noqa: ASYNC110 - polls the watcher's result
                await anyio.sleep(0.01)
        start = registry.generation
        make_skill("pptx", root=root)
        await wait_for_generation(registry, start)
    assert names(registry) == ["docx", "pptx"]


async def test_watch_without_paths_enters_and_leaves(make_skill: MakeSkill) -> None:
    """A registry of registered skills only can be watched (nothing to follow)."""
    registry = SkillRegistry([load_skill(make_skill("custom"))])
    async with registry.watch(interval=0.02):
        assert names(registry) == ["custom"]
    assert names(registry) == ["custom"]
