"""Fixtures for the Anthropic tests: a fake server on loopback and fast-retrying clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from conjure_async.anthropic import AnthropicAPI
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import FakeAnthropicServer
from tests.anthropic.constants import API_KEY, FAST


@pytest.fixture(autouse=True)
def no_leaked_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[AnthropicAPI]]:
    """Every AnthropicAPI a test creates must be closed by its end."""
    created: list[AnthropicAPI] = []
    original = AnthropicAPI.__init__

    def tracking_init(self: AnthropicAPI, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(AnthropicAPI, "__init__", tracking_init)
    yield created
    leaked = [api for api in created if not api.closed]
    assert not leaked, f"unclosed AnthropicAPI clients: {leaked}"


@pytest.fixture(autouse=True)
def no_leaked_servers() -> Iterator[None]:
    """Every FakeAnthropicServer a test starts must be stopped by its end."""
    yield
    assert FakeAnthropicServer.running() == []


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the hosted backend's skill index out of the user's home."""
    monkeypatch.setenv("CONJURE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def model_factory(
    server: FakeAnthropicServer,
) -> AsyncIterator[Callable[..., AnthropicModel]]:
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


@pytest.fixture
async def api(server: FakeAnthropicServer) -> AsyncIterator[AnthropicAPI]:
    async with AnthropicAPI(api_key=API_KEY, base_url=server.base_url, retry=FAST) as client:
        yield client
