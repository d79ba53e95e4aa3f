"""Every test starts with structlog as the run found it, whatever the test before did.

``structlog.testing.capture_logs`` leaves structlog marked as configured, which
switches the library's log route from stdlib ``logging`` to structlog: a test
after it that reads ``caplog`` would see nothing. The suite's autouse fixture
in ``tests/conftest.py`` restores the state; these tests run in file order.
"""

from __future__ import annotations

import logging

import pytest
import structlog
from structlog.testing import capture_logs

from conjure_async._logging import get_logger


def test_a_test_captures_logs() -> None:
    """capture_logs marks structlog configured while the test runs (the state to undo)."""
    with capture_logs() as logs:
        get_logger(session_id="s").info("captured")
    assert [e["event"] for e in logs] == ["captured"]
    assert structlog.is_configured()


def test_the_next_test_finds_structlog_unconfigured() -> None:
    """After a capture_logs test, structlog is not configured again."""
    assert not structlog.is_configured()


def test_the_next_test_sees_library_logs_in_stdlib_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stdlib route is back: caplog sees the library's events (as the egress log test needs)."""
    with caplog.at_level(logging.INFO, logger="conjure_async"):
        get_logger(session_id="s").info("visible")
    assert caplog.messages == ["visible session_id='s'"]


def test_a_test_configures_structlog_its_own_way() -> None:
    """A test that configures structlog with its own processors (undone after it)."""
    structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
    assert structlog.is_configured()


def test_the_defaults_are_back_after_a_test_configured_structlog() -> None:
    """After a test configured structlog, its processors are structlog's defaults again."""
    assert not structlog.is_configured()
    assert not any(
        isinstance(p, structlog.processors.KeyValueRenderer)
        for p in structlog.get_config()["processors"]
    )
