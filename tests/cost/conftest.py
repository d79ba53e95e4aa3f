"""Fixtures for the long-conversation tests: an accounting fake server, clients, leak checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conjure_async.testing import FakeAnthropicServer
from tests.anthropic.conftest import (
    isolated_cache,
    model_factory,  # resolves this folder's accounting `server`
    no_leaked_clients,
    no_leaked_servers,
)
from tests.anthropic.constants import API_KEY

__all__ = [
    "isolated_cache",
    "model_factory",
    "no_leaked_clients",
    "no_leaked_servers",
    "sdk_client",
    "server",
]


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    """A fake API that reports usage as the API computes it."""
    async with FakeAnthropicServer(api_key=API_KEY, accounting=True) as fake:
        yield fake


@pytest.fixture
async def sdk_client(server: FakeAnthropicServer) -> AsyncIterator[Any]:
    """An ``AsyncAnthropic`` client pointed at the fake server."""
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    yield client
    await client.close()
