"""Helpers shared by the Docker tests: tool calls, a chat, direct execs in a container."""

from __future__ import annotations

from typing import Any

from conjure_async import Session
from conjure_async.backends import DockerBackend
from conjure_async.backends.docker._api import docker_client
from conjure_async.events import Reply
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.docker.engine import Engine


def bash(command: str) -> dict[str, Any]:
    return tool_call("bash_tool", {"command": command, "description": "test"})


def script(*calls: dict[str, Any]) -> ScriptedModel:
    return ScriptedModel([*(tool_use_response(c) for c in calls), text_response("done")])


async def chat(backend: DockerBackend, *calls: dict[str, Any], **options: Any) -> Reply:
    async with Session(backend, model=script(*calls), **options) as session:
        return await session.chat("go")


async def raw_exec(engine: Engine, container_id: str, *cmd: str) -> str:
    """Run a command in a container directly (not through the backend)."""
    async with docker_client(engine.host) as client:
        execution = await client.containers.container(container_id).exec(list(cmd))
        out = bytearray()
        async with execution.start(detach=False) as stream:
            while (message := await stream.read_out()) is not None:
                out += message.data
        return out.decode()


async def container_exists(engine: Engine, container_id: str) -> bool:
    async with docker_client(engine.host) as client:
        found = await client.containers.list(all=True, filters={"id": [container_id]})
        return bool(found)


async def sleeping(engine: Engine, container_id: str) -> list[str]:
    """The ``sleep 301`` processes running in the container."""
    listing = await raw_exec(engine, container_id, "ps", "-eo", "args")
    return [line for line in listing.splitlines() if line.strip() == "sleep 301"]


async def processes(engine: Engine, container_id: str, needle: str) -> list[str]:
    """The processes in the container whose command line contains ``needle``."""
    listing = await raw_exec(engine, container_id, "ps", "-eo", "pid,user,stat,args")
    return [line for line in listing.splitlines()[1:] if needle in line and " ps " not in line]


async def is_running(engine: Engine, container_id: str) -> bool:
    async with docker_client(engine.host) as client:
        info = await client.containers.container(container_id).show()
        return bool(info["State"]["Running"])
