"""``conjure demo`` runs offline and shows real tool runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conjure_async", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_demo_runs_offline_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    result = run_cli("demo", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Loaded 3 example skills" in out
    # the log analyzer really ran on the sample log
    assert "-> bash_tool [local] python3" in out
    assert "levels: DEBUG=14, ERROR=5, FATAL=1, INFO=27, WARN=5" in out
    assert "<- bash_tool ok, exit 0" in out
    assert "[file] report.md (local)" in out
    assert "[turn finished: end_turn, 4 model calls" in out
    # the hosted backend against the fake server, said plainly
    assert "FAKE Anthropic server" in out
    assert "[pause_turn #2: the session continues the turn]" in out
    assert "budget.xlsx" in out
    # the monitoring pipeline: native fetch, local analysis, a failing stage isolated
    assert "finding: api: 240 lines" in out
    assert "finding: billing: logs unavailable" in out
    assert "# Monitoring report" in out
    assert "not available in this checkout" not in out
    assert "Demo finished" in out


def test_chat_without_a_key_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    result = run_cli("chat", "hello", env=env)
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in result.stderr
