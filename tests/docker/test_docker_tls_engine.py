"""A remote engine for real: a second dockerd over TCP with TLS, a kept container reattached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from conjure_async._logging import get_logger
from conjure_async.backends import (
    BackendContext,
    DockerBackend,
    ToolCall,
    ToolContext,
    ToolResult,
    build_offline_image,
)
from conjure_async.backends.docker._api import docker_client
from tests.docker.engine import TEST_IMAGE
from tests.docker.tls_engine import TlsEngine, start_tls_engine, stop_tls_engine
from tests.support.system import require

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tls_engine() -> Iterator[TlsEngine]:
    """A dockerd on 127.0.0.1 with --tlsverify and the test image (skips only outside CI)."""
    found = require(start_tls_engine(), "TLS engine")
    try:
        with pytest.MonkeyPatch.context() as patch:  # aiodocker reads these for tcp:// engines
            patch.setenv("DOCKER_TLS_VERIFY", "1")
            patch.setenv("DOCKER_CERT_PATH", str(found.certs))
            anyio.run(lambda: build_offline_image(TEST_IMAGE, docker_host=found.host))
        yield found
    finally:
        stop_tls_engine(found)


async def _run(backend: DockerBackend, command: str) -> ToolResult:
    call = ToolCall("toolu_tls", "bash_tool", {"command": command})
    ctx: ToolContext[None] = ToolContext("tls", call.id, call.name, get_logger(), None)
    found = [e async for e in backend.run_tool(call, ctx) if isinstance(e, ToolResult)]
    return found[0]


async def test_a_session_on_a_tls_engine_and_a_second_backend_reattaches(
    tls_engine: TlsEngine,
) -> None:
    """Backend one creates the container over TLS; backend two, from its state, uses it."""
    options: dict[str, Any] = {
        "image": TEST_IMAGE,
        "docker_host": tls_engine.host,
        "ssl_context": tls_engine.ssl_context(),
        "keep_container": True,
    }
    first = DockerBackend(**options)
    async with anyio.create_task_group() as tg:
        await first.open(BackendContext("tls-session", tg, get_logger()))
        try:
            written = await _run(first, "echo over tls > note.txt && cat note.txt")
        finally:
            await first.aclose()  # leaves the kept container running
        state = first.dump_state()
        assert written.output.strip() == "over tls"
        assert state["docker_host"] == tls_engine.host
        second = DockerBackend(**{**options, "ssl_context": tls_engine.ssl_context()})
        second.load_state(state)
        await second.open(BackendContext("tls-session", tg, get_logger()))
        try:
            again = await _run(second, "cat note.txt")
            assert second.container_id == state["container_id"]
        finally:
            await second.aclose()
        # A state without the image's processes (an older dump): they are looked up again.
        third = DockerBackend(**{**options, "ssl_context": tls_engine.ssl_context()})
        third.load_state({"container_id": state["container_id"]})
        await third.open(BackendContext("tls-session", tg, get_logger()))
        try:
            last = await _run(third, "cat note.txt")
        finally:
            await third.remove_container()
            await third.aclose()
    assert again.output.strip() == last.output.strip() == "over tls"
    async with docker_client(tls_engine.host, ssl_context=tls_engine.ssl_context()) as client:
        assert await client.containers.list(all=True) == []
