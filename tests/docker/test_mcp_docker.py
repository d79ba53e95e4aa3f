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


async def test_session_runs_a_served_skill_script_in_docker(docker_engine: Engine) -> None:
    """Skills of `conjure mcp serve` (another process) run inside the session's container."""
    from conjure_async import Session
    from conjure_async.backends import DockerBackend
    from conjure_async.mcp import McpBackend, McpSkillsBackend
    from conjure_async.testing import ScriptedModel, text_response
    from tests.mcp.test_mcp_skills import SKILLS, run_script

    def in_docker(skills: list[Skill]) -> DockerBackend:
        return DockerBackend(skills, image=docker_engine.image, docker_host=docker_engine.host)

    server = McpBackend(serve_command(str(SKILLS)))
    backend = McpSkillsBackend({"team": server}, backend=in_docker)
    model = ScriptedModel(
        [run_script("team.csv-summary", "scripts/summarize.py"), text_response("ok")]
    )
    async with Session(backend, model=model) as session:
        root = backend.directory
        assert root is not None
        assert isinstance(backend.backend, DockerBackend)
        reply = await session.chat("summarize")
        prompt = model.requests[0].system or ""
    (record,) = reply.tool_calls
    assert not record.is_error, record.output
    assert "temp: count=2" in record.output
    assert "/mnt/skills/team.csv-summary/SKILL.md" in prompt
    assert not root.exists()
