"""Shared test configuration, and a suite-wide leak check."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import process_alive


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the library is asyncio-first)."""
    return "asyncio"


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
    return {p.name for p in Path(tempfile.gettempdir()).glob("conjure-*")}


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
