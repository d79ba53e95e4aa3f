"""The conjure CLI: validate, skills list, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conjure_async._cli import main
from conjure_async.skills._loader import NO_SKILLS_FOUND
from tests.skills.broken import BROKEN_PROBLEMS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "skills"
BROKEN = REPO / "tests" / "data" / "skills_broken"
MakeSkill = Callable[..., Path]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_valid_skills_prints_ok_per_skill_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "validate", str(EXAMPLES))
    assert code == 0
    assert out.splitlines() == [
        f"ok: csv-summary ({EXAMPLES / 'csv-summary'})",
        f"ok: log-analyzer ({EXAMPLES / 'log-analyzer'})",
        f"ok: release-notes ({EXAMPLES / 'release-notes'})",
        "3 valid, 0 invalid, 0 errors, 0 warnings",
    ]


def test_validate_mixed_folder_prints_every_problem_with_path_and_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "validate", str(BROKEN))
    assert code == 1
    lines = out.splitlines()
    problems = [line for line in lines if line.startswith("error: ")]
    assert [
        tuple(line.removeprefix(f"error: {BROKEN}/").split(": ", 2)[:2]) for line in problems
    ] == BROKEN_PROBLEMS
    assert f"ok: valid-skill ({BROKEN / 'valid-skill'})" in lines
    assert lines[-1] == "1 valid, 10 invalid, 11 errors, 0 warnings"
    assert err == ""


def test_validate_reports_the_yaml_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "validate", str(BROKEN / "bad-yaml"))
    assert f"error: {BROKEN / 'bad-yaml' / 'SKILL.md'}: frontmatter: line 4: invalid YAML" in out


def test_validate_several_paths(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "validate", str(EXAMPLES / "log-analyzer"), str(BROKEN / "dir-mismatch")
    )
    assert code == 1
    assert out.splitlines()[0] == f"ok: log-analyzer ({EXAMPLES / 'log-analyzer'})"
    assert f"{BROKEN / 'dir-mismatch' / 'SKILL.md'}: name: " in out


def test_validate_missing_path_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "validate", str(tmp_path / "nowhere"))
    assert code == 1
    assert f"error: {tmp_path / 'nowhere'}: path: does not exist" in out


@pytest.mark.parametrize("content", ["empty", "non-skill-files", "empty-sub-folders"])
def test_validate_a_folder_without_skills_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str
) -> None:
    """A folder holding no skill (empty, only other files, empty sub-folders) is an error."""
    folder = tmp_path / "skills"
    folder.mkdir()
    if content == "non-skill-files":
        (folder / "README.md").write_text("not a skill")
    elif content == "empty-sub-folders":
        (folder / "one").mkdir()
        (folder / "two").mkdir()
    code, out, _ = run(capsys, "validate", str(folder))
    assert code == 1
    assert out.splitlines() == [
        f"error: {folder}: path: {NO_SKILLS_FOUND}",
        "0 valid, 1 invalid, 1 error, 0 warnings",
    ]


def test_validate_a_typo_next_to_a_valid_path_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped path among valid ones still fails the run."""
    code, out, _ = run(capsys, "validate", str(EXAMPLES / "csv-summary"), str(tmp_path / "typo"))
    assert code == 1
    assert f"error: {tmp_path / 'typo'}: path: does not exist" in out
    assert out.splitlines()[-1] == "1 valid, 1 invalid, 1 error, 0 warnings"


def test_validate_an_empty_folder_next_to_valid_skills_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every PATH given must hold a skill: valid skills elsewhere do not hide an empty one."""
    (tmp_path / "empty").mkdir()
    code, out, _ = run(capsys, "validate", str(EXAMPLES), str(tmp_path / "empty"))
    assert code == 1
    assert out.splitlines()[-1] == "3 valid, 1 invalid, 1 error, 0 warnings"


def test_validate_json_of_a_folder_without_skills_is_not_ok(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--json reports a skill-less folder as a failure with severity error."""
    code, out, _ = run(capsys, "validate", "--json", str(tmp_path))
    report = json.loads(out)
    assert code == 1
    assert report["ok"] is False
    assert [(f["field"], f["severity"]) for f in report["failures"]] == [("path", "error")]
    assert (report["errors"], report["warnings"]) == (1, 0)


def test_validate_summary_counts_errors_and_warnings_separately(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill, tmp_path: Path
) -> None:
    """One error and two warnings read '1 error, 2 warnings', not '1 problem(s)'."""
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    directory = make_skill("demo-skill", dirname="other-name", body="")
    (directory / "link.txt").symlink_to(outside)
    code, out, _ = run(capsys, "validate", str(directory))
    assert code == 1
    assert [line.split(":", 1)[0] for line in out.splitlines()[:-1]] == [
        "error",
        "warning",
        "warning",
    ]
    assert out.splitlines()[-1] == "0 valid, 1 invalid, 1 error, 2 warnings"
    code, out, _ = run(capsys, "validate", "--json", str(directory))
    assert (json.loads(out)["errors"], json.loads(out)["warnings"]) == (1, 2)


def test_validate_warnings_only_exits_0_and_counts_them(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill
) -> None:
    """Warnings alone keep exit code 0 and are counted as warnings."""
    code, out, _ = run(capsys, "validate", str(make_skill(body="")))
    assert code == 0
    assert out.splitlines()[-1] == "1 valid, 0 invalid, 0 errors, 1 warning"


def test_skills_list_of_a_folder_without_skills_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`skills list` on a skill-less folder says so on stderr and exits 1."""
    code, out, err = run(capsys, "skills", "list", str(tmp_path))
    assert code == 1
    assert out == ""
    assert err.startswith(f"error: {tmp_path}: path: no skills found")


def test_validate_a_skill_less_folder_through_the_real_command(tmp_path: Path) -> None:
    """`python -m conjure_async validate EMPTY` exits 1 (what a CI step sees)."""
    completed = subprocess.run(
        [sys.executable, "-m", "conjure_async", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "no skills found" in completed.stdout


@pytest.mark.parametrize("name", ["技能", "мой-навык", "навык", "café"])
def test_validate_accepts_lowercase_names_in_any_script(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill, name: str
) -> None:
    """`conjure validate` accepts the reference's i18n names; the anthropic profile does not."""
    directory = make_skill(name)
    code, out, _ = run(capsys, "validate", str(directory))
    assert (code, out.splitlines()[0]) == (0, f"ok: {name} ({directory})")
    code, out, _ = run(capsys, "validate", "--profile", "anthropic", str(directory))
    assert code == 1
    assert "name: must use only a-z, 0-9 and '-' on the hosted platform" in out


def test_validate_rejects_an_uppercase_cyrillic_name(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill
) -> None:
    """НАВЫК is refused as not lowercase, as the reference validator does."""
    code, out, _ = run(capsys, "validate", str(make_skill("НАВЫК")))
    assert code == 1
    assert "name: must be lowercase (found 'А', 'В', 'К', 'Н', 'Ы')" in out  # noqa: RUF001


def test_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--json", str(BROKEN))
    report = json.loads(out)
    assert code == 1
    assert report["ok"] is False
    assert {s["name"]: s["valid"] for s in report["skills"]} == {
        "Bad_Name": False,
        "bad-metadata": False,
        "another-name": False,
        "unknown-field": False,
        "valid-skill": True,
    }
    assert len(report["failures"]) == 6
    assert set(report["failures"][0]) == {"path", "field", "message", "severity"}


def test_validate_anthropic_profile_applies_the_hosted_rules(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill
) -> None:
    directory = make_skill("claude-helper")
    assert run(capsys, "validate", str(directory))[0] == 0
    code, out, _ = run(capsys, "validate", "--profile", "anthropic", str(directory))
    assert code == 1
    assert "name: must not contain the reserved word 'claude'" in out


def test_validate_prints_warnings_without_failing(
    capsys: pytest.CaptureFixture[str], make_skill: MakeSkill
) -> None:
    directory = make_skill(body="")
    code, out, _ = run(capsys, "validate", str(directory))
    assert code == 0
    assert f"warning: {directory / 'SKILL.md'}: body: is empty" in out


def test_skills_list_prints_name_description_and_location(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "skills", "list", str(EXAMPLES))
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0:3] == [
        "csv-summary",
        "  description: " + lines[1].removeprefix("  description: "),
        f"  location: {EXAMPLES / 'csv-summary' / 'SKILL.md'}",
    ]
    assert lines[1].startswith("  description: Describe the columns of a CSV file")
    assert [line for line in lines if not line.startswith(" ")] == [
        "csv-summary",
        "log-analyzer",
        "release-notes",
    ]


def test_skills_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "skills", "list", "--json", str(EXAMPLES / "log-analyzer"))
    assert code == 0
    (entry,) = json.loads(out)
    assert entry["name"] == "log-analyzer"
    assert entry["location"] == str(EXAMPLES / "log-analyzer" / "SKILL.md")
    assert entry["description"].startswith("Summarize application log files")


def test_skills_list_reports_problems_on_stderr_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "skills", "list", str(BROKEN))
    assert code == 1
    assert "valid-skill" in out.splitlines()
    assert len(err.splitlines()) == 11


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage: conjure" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--help")
    assert code == 0
    assert "--profile" in out


def test_python_dash_m_runs_the_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "conjure_async", "validate", str(EXAMPLES / "csv-summary")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("ok: csv-summary")
