"""Shared test configuration, and a suite-wide leak check."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.helpers import process_alive

# The run's own temp dir: every work dir, cache and socket the suite (and the
# library under test) makes lands here, so the leak check below sees only what
# this run made, never the work dirs of other programs sharing the machine.
# Set at import, before anything asks tempfile for its directory; children
# inherit it through TMPDIR. Removed when the run ends.
RUN_TMP = Path(tempfile.mkdtemp(prefix="conjure-tests-run-")).resolve()
os.environ["TMPDIR"] = str(RUN_TMP)
tempfile.tempdir = str(RUN_TMP)
# Removed at exit whatever happens: a failed or interrupted run leaves nothing
# (the leak check's message names what leaked).
atexit.register(shutil.rmtree, RUN_TMP, ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the library is asyncio-first)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """Leave structlog's global configuration as the test found it.

    ``structlog.testing.capture_logs`` (and any ``structlog.configure``) leaves
    structlog marked as configured, which moves the library's events from stdlib
    ``logging`` to structlog: a later test reading ``caplog`` would see nothing.
    """
    was_configured = structlog.is_configured()
    config = structlog.get_config()
    processors = list(config["processors"])  # capture_logs edits the list in place
    yield
    if was_configured:
        config["processors"][:] = processors
        structlog.configure(**config)
    else:
        structlog.reset_defaults()


def _children() -> set[int]:
    """Live (non-zombie) processes whose parent is this test process."""
    found: set[int] = set()
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and process_alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def _work_dirs() -> set[str]:
    """Session work dirs in this run's own temp dir (never the machine-wide one)."""
    return {p.name for p in RUN_TMP.glob("conjure-*")}


@pytest.fixture(scope="session", autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the run if the suite leaves child processes or session work dirs behind.

    Set up first, so it is checked last: after every other session fixture
    (the Docker engine, servers) has been torn down.
    """
    dirs_before = _work_dirs()
    children_before = _children()
    yield
    leaked_dirs = _work_dirs() - dirs_before
    leaked_children = _children() - children_before
    assert not leaked_dirs, f"session work dirs left behind: {sorted(leaked_dirs)}"
    assert not leaked_children, f"child processes left running: {sorted(leaked_children)}"
