"""The conjure CLI: validate, skills list, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conjure_async._cli import main
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
        "3 valid, 0 invalid, 0 problem(s)",
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
    assert lines[-1] == "1 valid, 10 invalid, 10 problem(s)"
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
    assert len(err.splitlines()) == 10


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
