"""Fixtures shared by the Local backend tests."""

from __future__ import annotations

import pytest

from tests.support.system import ensure_packages, in_ci


@pytest.fixture(scope="session")
def bwrap() -> str:
    """bubblewrap, installed when missing and possible; required under CI=true."""
    path = ensure_packages("bwrap", "bubblewrap")
    if path is None:
        if in_ci():
            pytest.fail("CI=true needs bubblewrap and it could not be installed")
        pytest.skip("bubblewrap is not installed and cannot be installed here")
    return path
