"""Values shared by the Anthropic tests."""

from __future__ import annotations

from conjure_async.anthropic import RetryPolicy

API_KEY = "sk-ant-test-SECRET-0123456789"
"""The key the fake server accepts; no test output may contain it."""

FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002)
"""Retries with tiny backoff, so retry tests stay fast."""
