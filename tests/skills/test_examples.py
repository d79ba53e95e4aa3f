"""The example skills' scripts work on the shipped sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKILLS = REPO / "examples" / "skills"
DATA = REPO / "examples" / "data"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=60,
    )


def test_log_analyzer_summarizes_the_sample_log_as_json() -> None:
    completed = run(
        str(SKILLS / "log-analyzer/scripts/analyze.py"),
        str(DATA / "app.log"),
        "--format",
        "json",
        "--top",
        "2",
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["lines"] == 54
    assert summary["unparsed"] == 2
    assert sum(summary["levels"].values()) == 52
    assert set(summary["levels"]) == {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert set(summary["services"]) == {"api", "auth", "billing", "worker"}
    assert len(summary["top_errors"]) == 2
    assert summary["top_errors"][0]["count"] >= summary["top_errors"][1]["count"]


def test_log_analyzer_reads_stdin_and_counts_quoted_messages() -> None:
    log = (
        '2026-11-01T10:00:00Z ERROR service=api msg="db \\"main\\" down"\n'
        '2026-11-01T10:00:01Z ERROR service=api msg="db \\"main\\" down"\n'
        "2026-11-01T10:00:02Z INFO service=web msg=started\n"
    )
    completed = run(str(SKILLS / "log-analyzer/scripts/analyze.py"), "--format", "json", stdin=log)
    summary = json.loads(completed.stdout)
    assert summary["levels"] == {"ERROR": 2, "INFO": 1}
    assert summary["top_errors"] == [{"msg": 'db "main" down', "count": 2}]


def test_log_analyzer_text_output() -> None:
    completed = run(str(SKILLS / "log-analyzer/scripts/analyze.py"), str(DATA / "app.log"))
    assert completed.returncode == 0
    assert completed.stdout.startswith("54 lines (2 unparsed)")


def test_log_analyzer_missing_file_exits_2() -> None:
    completed = run(str(SKILLS / "log-analyzer/scripts/analyze.py"), "/nonexistent/app.log")
    assert completed.returncode == 2
    assert "cannot read" in completed.stderr


def test_csv_summary_describes_each_column() -> None:
    completed = run(
        str(SKILLS / "csv-summary/scripts/summarize.py"),
        str(DATA / "cities.csv"),
        "--format",
        "json",
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["rows"] == 6
    population = summary["columns"]["population"]
    assert (population["type"], population["missing"], population["max"]) == (
        "number",
        1,
        3878100.0,
    )
    assert summary["columns"]["country"]["top"][0][1] == 2
