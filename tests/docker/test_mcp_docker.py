"""`conjure mcp serve --backend docker`: a sandboxed call, and the container gone on disconnect."""

from __future__ import annotations

import os

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from conjure_async.skills import Skill
from tests.docker.conftest import skill_dir
from tests.docker.engine import Engine, docker_client
from tests.mcp.skills_client import serve_command, text

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


async def test_docker_backed_call_and_disconnect_removes_the_container(
    docker_engine: Engine, docker_skills: list[Skill]
) -> None:
    """A bash_tool call runs in a container, which is removed when the client disconnects."""
    command = serve_command(
        str(skill_dir(docker_skills).parent), "--backend", "docker", "--image", docker_engine.image
    )
    env = {"DOCKER_HOST": docker_engine.host, "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(
            "bash_tool", {"command": "cat /etc/hostname; id -u", "description": "where"}
        )
        assert not result.is_error, text(result)
        hostname, uid = text(result).split()
        assert uid == "65534"
        async with docker_client(docker_engine.host) as client:
            found = [c for c in await client.containers.list() if c.id.startswith(hostname)]
            assert found, "the call ran in a container of this engine"
    async with docker_client(docker_engine.host) as client:
        left = await client.containers.list(all=True, filters={"id": [found[0].id]})
    assert left == []
