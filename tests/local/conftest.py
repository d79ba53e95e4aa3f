"""Fixtures shared by the Local backend tests (and the bwrap egress tests)."""

from __future__ import annotations

import pytest

from tests.support.system import require_package


@pytest.fixture(scope="session")
def bwrap() -> str:
    """bubblewrap, installed when missing and possible; required under CI=true."""
    return require_package("bwrap", "bubblewrap")
