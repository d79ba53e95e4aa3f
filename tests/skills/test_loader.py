"""load_skills / load_skill: directories, folders of skills, strict and lenient modes."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conjure_async._exceptions import (
    SkillError,
    SkillNotFoundError,
    SkillResourceError,
    SkillValidationError,
)
from conjure_async.skills import Skill, SkillSet, load_skill, load_skills
from conjure_async.skills._loader import NO_SKILLS_FOUND
from tests.skills.broken import BROKEN_PROBLEMS

BROKEN = Path(__file__).resolve().parents[1] / "data" / "skills_broken"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"
MakeSkill = Callable[..., Path]


def relative(path: str) -> str:
    return Path(path).relative_to(BROKEN).as_posix()


# --- what a skill holds ---------------------------------------------------------


def test_skill_directory_loads_its_frontmatter(make_skill: MakeSkill) -> None:
    directory = make_skill(
        "demo-skill",
        extra=(
            "license: MIT\ncompatibility: python3\nallowed-tools: view  bash_tool\n"
            "metadata:\n  author: me\n"
        ),
    )
    skill = load_skill(directory)
    assert skill.model_dump(include={"name", "license", "compatibility"}) == {
        "name": "demo-skill",
        "license": "MIT",
        "compatibility": "python3",
    }
    assert skill.allowed_tools == ["view", "bash_tool"]
    assert skill.metadata == {"author": "me"}
    assert skill.path == directory
    assert skill.skill_md == directory / "SKILL.md"
    assert skill.diagnostics == []


def test_resources_are_grouped_by_top_folder_and_sorted(make_skill: MakeSkill) -> None:
    directory = make_skill(
        files={
            "scripts/b.py": "",
            "scripts/a.py": "",
            "scripts/lib/util.py": "",
            "references/guide.md": "",
            "assets/template.md": "",
            "README.md": "",
            "notes/x.txt": "",
            "__pycache__/a.cpython-311.pyc": b"\0",
        }
    )
    resources = load_skill(directory).resources
    assert resources.model_dump() == {
        "scripts": ("scripts/a.py", "scripts/b.py", "scripts/lib/util.py"),
        "references": ("references/guide.md",),
        "assets": ("assets/template.md",),
        "other": ("README.md", "notes/x.txt"),
    }


def test_content_hash_is_deterministic_and_location_independent(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    first = make_skill(files={"scripts/run.py": "print(1)\n"}, root=tmp_path / "a")
    second = make_skill(files={"scripts/run.py": "print(1)\n"}, root=tmp_path / "b")
    hash_a = load_skill(first).content_hash
    assert len(hash_a) == 64
    assert hash_a == load_skill(first).content_hash == load_skill(second).content_hash


def test_content_hash_changes_with_a_file(make_skill: MakeSkill) -> None:
    directory = make_skill(files={"scripts/run.py": "print(1)\n"})
    before = load_skill(directory).content_hash
    (directory / "scripts" / "run.py").write_text("print(2)\n")
    assert load_skill(directory).content_hash != before


def test_content_hash_changes_with_a_file_name(make_skill: MakeSkill) -> None:
    directory = make_skill(files={"scripts/run.py": "x"})
    before = load_skill(directory).content_hash
    (directory / "scripts" / "run.py").rename(directory / "scripts" / "go.py")
    assert load_skill(directory).content_hash != before


def test_body_is_read_on_first_access_and_cached(make_skill: MakeSkill) -> None:
    directory = make_skill(body="First version.\n")
    skill = load_skill(directory)
    assert skill.body == "First version.\n"
    (directory / "SKILL.md").write_text("---\nname: demo-skill\ndescription: d\n---\nAgain\n")
    assert skill.load_body() == "First version.\n"


def test_body_is_not_read_at_load_time(make_skill: MakeSkill) -> None:
    directory = make_skill(body="Original.\n")
    skill = load_skill(directory)
    (directory / "SKILL.md").write_text("---\nname: demo-skill\ndescription: d\n---\nNewer\n")
    assert skill.body == "Newer\n"


def test_read_resource_returns_bytes(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill(files={"references/guide.md": "# Guide\n"}))
    assert skill.read_resource("references/guide.md") == b"# Guide\n"


@pytest.mark.parametrize("relpath", ["../outside.txt", "scripts/../../outside.txt"])
def test_read_resource_refuses_paths_escaping_the_skill(
    make_skill: MakeSkill, relpath: str
) -> None:
    directory = make_skill(files={"scripts/a.py": ""})
    (directory.parent / "outside.txt").write_text("secret")
    skill = load_skill(directory)
    with pytest.raises(SkillResourceError, match="outside the skill directory"):
        skill.read_resource(relpath)


def test_read_resource_refuses_absolute_paths(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill())
    with pytest.raises(SkillResourceError, match="relative to the skill"):
        skill.read_resource(str(skill.skill_md))


def test_read_resource_refuses_symlinks_pointing_outside(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    directory = make_skill()
    (directory / "link.txt").symlink_to(secret)
    skill = load_skill(directory)
    with pytest.raises(SkillResourceError, match="outside the skill directory"):
        skill.read_resource("link.txt")


def test_symlinks_pointing_outside_are_left_out_with_a_warning(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    directory = make_skill()
    (directory / "link.txt").symlink_to(secret)
    skill = load_skill(directory)
    assert skill.resources.other == ()
    assert [(d.field, d.severity) for d in skill.diagnostics] == [("resources", "warning")]


def test_read_resource_of_a_missing_file_is_a_skill_resource_error(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill())
    with pytest.raises(SkillResourceError, match="cannot read") as info:
        skill.read_resource("nope.md")
    assert isinstance(info.value.__cause__, OSError)


def test_skill_is_immutable(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill())
    with pytest.raises(ValueError, match="frozen"):
        skill.name = "other"  # type: ignore[misc]


# --- finding skills ---------------------------------------------------------------


def test_root_folder_loads_every_skill_in_sorted_order(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    for name in ("zeta", "alpha", "mid-one"):
        make_skill(name, root=root)
    (root / "not-a-skill").mkdir()
    (root / ".hidden").mkdir()
    (root / ".hidden" / "SKILL.md").write_text("garbage")
    assert load_skills(root).names() == ["alpha", "mid-one", "zeta"]


def test_several_paths_load_in_the_given_order(make_skill: MakeSkill, tmp_path: Path) -> None:
    second = make_skill("b-skill", root=tmp_path / "r1")
    first = make_skill("a-skill", root=tmp_path / "r2")
    assert load_skills(second, first).names() == ["b-skill", "a-skill"]


def test_path_to_skill_md_loads_its_directory(make_skill: MakeSkill) -> None:
    directory = make_skill()
    assert load_skill(directory / "SKILL.md").path == directory


def test_example_skills_are_valid() -> None:
    skills = load_skills(EXAMPLES)
    assert skills.names() == ["csv-summary", "log-analyzer", "release-notes"]
    assert skills.diagnostics == []


def test_load_skills_returns_a_skill_set_that_is_a_list(make_skill: MakeSkill) -> None:
    result = load_skills(make_skill())
    assert isinstance(result, SkillSet)
    assert isinstance(result, list)
    assert isinstance(result[0], Skill)
    assert result.ok


def test_skill_set_get_by_name(make_skill: MakeSkill) -> None:
    result = load_skills(make_skill("demo-skill"))
    assert result.get("demo-skill") is result[0]
    with pytest.raises(SkillNotFoundError, match="no skill named 'nope'"):
        result.get("nope")


def test_load_skill_refuses_a_folder_of_skills(make_skill: MakeSkill, tmp_path: Path) -> None:
    make_skill(root=tmp_path / "root")
    with pytest.raises(SkillError, match="use load_skills"):
        load_skill(tmp_path / "root")


def test_unknown_profile_is_a_value_error(make_skill: MakeSkill) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        load_skills(make_skill(), profile="nope")  # type: ignore[arg-type]


# --- strict mode ------------------------------------------------------------------


def test_strict_mode_raises_one_error_listing_every_problem() -> None:
    with pytest.raises(SkillValidationError) as info:
        load_skills(BROKEN)
    problems = info.value.problems
    assert {(relative(p.path), p.field) for p in problems} == set(BROKEN_PROBLEMS)
    assert len(problems) == len(BROKEN_PROBLEMS)
    message = str(info.value)
    assert message.startswith(f"{len(BROKEN_PROBLEMS)} skill problems:")
    assert f"{BROKEN / 'bad-yaml' / 'SKILL.md'}: frontmatter: line 4: invalid YAML" in message


def test_strict_mode_problems_of_several_paths_are_combined(
    make_skill: MakeSkill, tmp_path: Path
) -> None:
    one = make_skill("one", root=tmp_path / "a", description="")
    two = make_skill("two", root=tmp_path / "b", dirname="other")
    with pytest.raises(SkillValidationError) as info:
        load_skills(one, two)
    assert [(Path(p.path).parent.name, p.field) for p in info.value.problems] == [
        ("one", "description"),
        ("other", "name"),
    ]


def test_strict_mode_keeps_warnings_on_the_skill(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill(body=""))
    assert [(d.field, d.severity) for d in skill.diagnostics] == [("body", "warning")]


def test_long_body_is_a_warning(make_skill: MakeSkill) -> None:
    skill = load_skill(make_skill(body="line\n" * 600))
    assert [d.field for d in skill.diagnostics] == ["body"]
    assert "keep it under 500" in skill.diagnostics[0].message


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(SkillValidationError) as info:
        load_skills(tmp_path / "nowhere")
    assert [(p.field, p.message) for p in info.value.problems] == [("path", "does not exist")]


def test_a_file_that_is_neither_skill_md_nor_a_package_is_a_problem(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(SkillValidationError, match="is not a skill directory"):
        load_skills(other)


def test_duplicate_names_are_a_problem(make_skill: MakeSkill, tmp_path: Path) -> None:
    make_skill("same", root=tmp_path / "a")
    make_skill("same", root=tmp_path / "b")
    with pytest.raises(SkillValidationError, match="duplicate skill name 'same'"):
        load_skills(tmp_path / "a", tmp_path / "b")


def test_non_utf8_skill_md_is_a_problem(make_skill: MakeSkill) -> None:
    directory = make_skill()
    (directory / "SKILL.md").write_bytes(b"---\nname: demo-skill\ndescription: caf\xe9\n---\n")
    with pytest.raises(SkillValidationError, match="not valid UTF-8"):
        load_skill(directory)


def test_empty_root_is_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = load_skills(tmp_path / "empty")
    assert list(result) == []
    assert [(d.field, d.message, d.severity) for d in result.diagnostics] == [
        ("path", NO_SKILLS_FOUND, "warning")
    ]


# --- lenient mode -----------------------------------------------------------------


def test_lenient_mode_returns_loadable_skills_with_their_diagnostics() -> None:
    result = load_skills(BROKEN, lenient=True)
    assert result.names() == [
        "Bad_Name",
        "bad-metadata",
        "another-name",
        "unknown-field",
        "valid-skill",
    ]
    by_name = {s.name: [d.field for d in s.diagnostics] for s in result}
    assert by_name == {
        "Bad_Name": ["name", "name"],
        "bad-metadata": ["metadata.version"],
        "another-name": ["name"],
        "unknown-field": ["version"],
        "valid-skill": [],
    }
    assert [s.name for s in result if s.is_valid] == ["valid-skill"]


def test_lenient_mode_reports_unloadable_sources_as_failures() -> None:
    result = load_skills(BROKEN, lenient=True)
    assert {(relative(d.path), d.field) for d in result.failures} == {
        ("bad-yaml/SKILL.md", "frontmatter"),
        ("misnamed-file", "SKILL.md"),
        ("no-description/SKILL.md", "description"),
        ("no-frontmatter/SKILL.md", "frontmatter"),
        ("not-a-mapping/SKILL.md", "frontmatter"),
        ("unterminated/SKILL.md", "frontmatter"),
    }


def test_lenient_mode_diagnostics_hold_every_problem() -> None:
    result = load_skills(BROKEN, lenient=True)
    assert {(relative(d.path), d.field) for d in result.diagnostics} == set(BROKEN_PROBLEMS)
    assert not result.ok


def test_lenient_mode_keeps_best_effort_values(make_skill: MakeSkill) -> None:
    directory = make_skill(extra="metadata:\n  version: 1.5\nallowed-tools: [view]\n")
    skill = load_skill(directory, lenient=True)
    assert skill.metadata == {"version": "1.5"}
    assert skill.allowed_tools == ["view"]
    assert [d.field for d in skill.diagnostics] == ["metadata.version", "allowed-tools"]


def test_lenient_mode_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="conjure_async.skills"):
        load_skills(BROKEN, lenient=True)
    records = [r for r in caplog.records if r.name == "conjure_async.skills"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "11 problem(s)" in records[0].getMessage()


def test_lenient_mode_logs_nothing_when_all_is_valid(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="conjure_async.skills"):
        load_skills(EXAMPLES, lenient=True)
    assert caplog.records == []


def test_lenient_load_skill_raises_when_the_skill_cannot_be_loaded(tmp_path: Path) -> None:
    shutil.copytree(BROKEN / "no-frontmatter", tmp_path / "no-frontmatter")
    with pytest.raises(SkillValidationError, match="missing frontmatter"):
        load_skill(tmp_path / "no-frontmatter", lenient=True)


def test_lenient_load_skill_returns_an_invalid_but_loadable_skill() -> None:
    skill = load_skill(BROKEN / "dir-mismatch", lenient=True)
    assert skill.name == "another-name"
    assert not skill.is_valid
