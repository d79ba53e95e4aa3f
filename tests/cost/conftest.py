"""Fixtures for the long-conversation tests: an accounting fake server, clients, leak checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer
from tests.anthropic.conftest import isolated_cache, no_leaked_clients, no_leaked_servers
from tests.anthropic.constants import API_KEY, FAST

__all__ = ["isolated_cache", "model_factory", "no_leaked_clients", "no_leaked_servers", "server"]


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    """A fake API that reports usage as the API computes it."""
    async with FakeAnthropicServer(api_key=API_KEY, accounting=True) as fake:
        yield fake


@pytest.fixture
async def model_factory(
    server: FakeAnthropicServer,
) -> AsyncIterator[Callable[..., AnthropicModel]]:
    """``AnthropicModel``s pointed at the fake server, closed after the test."""
    made: list[AnthropicModel] = []

    def make(**options: Any) -> AnthropicModel:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", server.base_url)
        options.setdefault("retry", FAST)
        model = AnthropicModel(**options)
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()
