"""The monitoring agent example runs offline and reports what the logs say."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("examples.monitoring_agent")


def expected_finding(service: str) -> str:
    """The finding computed independently from the API's generated log lines."""
    log_api = importlib.import_module("examples.monitoring_agent.log_api")
    lines = log_api.generate_logs(service)
    errors = [line.split('msg="')[1].split('"')[0] for line in lines if " ERROR " in line]
    ((message, count),) = Counter(errors).most_common(1)
    most = f'most frequent: "{message}" ({count}x)'
    return f"{service}: {len(lines)} lines, {len(errors)} errors, {most}"


async def test_demo_analyzes_every_service_and_writes_a_report(
    example: ModuleType, tmp_path: Path
) -> None:
    printed: list[str] = []
    result = await example.run_monitoring_demo(printed.append, offline=True, output_dir=tmp_path)

    assert result.offline
    assert {name: o.summary for name, o in result.services.items()} == {
        "api": expected_finding("api"),
        "worker": expected_finding("worker"),
        "billing": "billing: logs unavailable (LogAPIError: log API answered 503 for "
        "/logs/billing: log shard unavailable)",
    }
    assert result.report == (tmp_path / "report.md").read_text()
    assert result.report.splitlines() == [
        "# Monitoring report",
        "",
        f"- {expected_finding('api')}",
        f"- {expected_finding('worker')}",
        f"- {result.services['billing'].summary}",
        "",
        "Check 1 service(s) whose logs could not be analyzed.",
    ]
    assert sorted((f.source, f.name) for f in result.files if f.source == "native") == [
        ("native", "api.log"),
        ("native", "worker.log"),
    ]
    # the report was written in the (fake) hosted container and downloaded
    (hosted,) = [f for f in result.files if f.source == "anthropic"]
    assert hosted.file_id is not None


def activity(printed: list[str], label: str) -> list[str]:
    """``-> tool`` / ``<- tool status`` steps printed for one stage, in order."""
    steps = []
    for line in printed:
        if line.startswith(f"[{label}] "):
            _, arrow, name, *rest = line.split()
            steps.append(f"{arrow} {name}" + (f" {rest[0].rstrip(':')}" if arrow == "<-" else ""))
    return steps


async def test_demo_prints_each_stage_activity_then_the_report(
    example: ModuleType, tmp_path: Path
) -> None:
    printed: list[str] = []
    result = await example.run_monitoring_demo(printed.append, offline=True, output_dir=tmp_path)
    fetch_and_analyze = [
        "-> log_fetcher_execute",
        "<- log_fetcher_execute ok",
        "-> bash_tool",
        "<- bash_tool ok",
    ]
    assert activity(printed, "api") == fetch_and_analyze
    assert activity(printed, "worker") == fetch_and_analyze
    assert activity(printed, "billing") == [
        "-> log_fetcher_execute",
        "<- log_fetcher_execute error",
    ]
    assert activity(printed, "report") == [
        "-> bash_code_execution",
        "<- bash_code_execution ok",
        "downloaded report.md",
    ]
    assert printed[-1] == result.report.rstrip()


def _run_example(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m examples.monitoring_agent ARGS`` without ``ANTHROPIC_API_KEY`` (offline)."""
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "examples.monitoring_agent", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_runs_as_a_module_offline() -> None:
    done = _run_example()
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(
        "- billing: logs unavailable (LogAPIError: log API answered 503 for /logs/billing: "
        "log shard unavailable)\n\nCheck 1 service(s) whose logs could not be analyzed."
    )


async def test_an_offline_run_says_first_what_is_scripted_and_what_is_real(
    example: ModuleType, tmp_path: Path
) -> None:
    """The first lines of an offline run name the scripted models and the fake server."""
    printed: list[str] = []
    await example.run_monitoring_demo(printed.append, offline=True, output_dir=tmp_path)
    assert printed[:4] == [
        "Offline run: the models are SCRIPTED (ScriptedModel plays Claude's turns from a script),",
        "and the report's code execution container is a FAKE Anthropic server on 127.0.0.1.",
        "Real: the log API, the native fetches and the local log analysis.",
        "Set ANTHROPIC_API_KEY to use Claude instead.",
    ]


def test_help_prints_the_usage_and_runs_nothing() -> None:
    """``python -m examples.monitoring_agent --help`` explains the options and exits 0."""
    done = _run_example("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m examples.monitoring_agent")
    assert "--offline" in done.stdout
    assert "log API serving" not in done.stdout
