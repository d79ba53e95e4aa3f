"""The suite's own temp dir never outlives the run, whatever way the run ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_temp_dir_is_removed_even_when_the_run_ends_early(tmp_path: Path) -> None:
    """A run that stops before the leak check's teardown (failure, -x, Ctrl-C) leaves no dir."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    code = "import tests.conftest as c; print(c.RUN_TMP); raise SystemExit(1)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stderr
    made = Path(done.stdout.strip())
    assert made.parent == tmp_path.resolve()
    assert not made.exists()
    assert list(tmp_path.iterdir()) == []
