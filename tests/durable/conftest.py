"""Fixtures of the durable tests: a real Temporal dev server, a client, a worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client

from tests.docker.conftest import docker_engine
from tests.durable.temporal_server import TemporalServer, start_server, stop_server
from tests.support.system import require

__all__ = ["docker_engine", "task_queue", "temporal_client", "temporal_server"]


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[TemporalServer]:
    """One dev server for the run (skips only outside CI when it cannot start)."""
    found = require(start_server(), "Temporal dev server")
    try:
        yield found
    finally:
        stop_server(found)


@pytest.fixture
async def temporal_client(temporal_server: TemporalServer) -> Client:
    """A client of the run's dev server."""
    return await Client.connect(temporal_server.address)


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own (workers of other tests never take its tasks)."""
    return f"conjure-test-{uuid.uuid4().hex[:12]}"
