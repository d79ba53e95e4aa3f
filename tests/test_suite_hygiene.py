"""The suite's own leak check looks only at what this run made."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import RUN_TMP


def test_the_run_has_a_temp_dir_of_its_own() -> None:
    """Work dirs the library makes during the run land in the run's own dir."""
    assert Path(tempfile.gettempdir()).resolve() == RUN_TMP
    assert os.environ["TMPDIR"] == str(RUN_TMP)
    assert Path("/tmp").resolve() != RUN_TMP


def test_work_dirs_of_other_programs_do_not_fail_the_leak_check() -> None:
    """A program sharing the machine creates a conjure-* dir in /tmp and keeps it.

    It outlives the leak check (removed only when this process exits), so an
    ``no_leaks`` that looked at the machine-wide /tmp would fail the run.
    """
    made = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp(prefix='conjure-other-'))"],
        env={**os.environ, "TMPDIR": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    atexit.register(shutil.rmtree, made, True)
    assert Path(made).parent == Path("/tmp")
