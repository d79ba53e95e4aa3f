"""``conjure docker build --offline`` on the real engine."""

from __future__ import annotations

import pytest

from conjure_async import Session
from conjure_async._commands import build_docker_image
from conjure_async.backends import DockerBackend
from conjure_async.backends.docker._api import docker_client
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.docker.engine import Engine

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

TAG = "conjure-async-cli-test:offline"


async def test_docker_build_offline_creates_a_working_sandbox_image(
    docker_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    written: list[str] = []
    try:
        assert await build_docker_image(TAG, offline=True, write=written.append) == 0
        assert written == [f"built {TAG}\n"]
        command = "python3 -c 'print(6 * 7)'"
        model = ScriptedModel(
            [
                tool_use_response(tool_call("bash_tool", {"command": command, "description": "t"})),
                text_response("done"),
            ]
        )
        backend = DockerBackend(image=TAG, docker_host=docker_engine.host)
        async with Session(backend, model=model) as session:
            reply = await session.chat("compute")
        assert reply.tool_calls[0].output == "42\n"
    finally:
        async with docker_client(docker_engine.host) as client:
            await client.images.delete(TAG, force=True)
