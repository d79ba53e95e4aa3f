"""Shared test configuration."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the library is asyncio-first)."""
    return "asyncio"
