"""Docker sandboxes that outlive a worker: reattached by id, swept by session liveness."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client

from conjure_async import ContainerDiedError
from conjure_async.backends import sweep_orphans
from conjure_async.backends.docker._api import docker_client
from conjure_async.temporal import (
    BackendSpec,
    DurableConfig,
    DurableSession,
    conjure_worker,
    session_alive,
)
from tests.docker.engine import Engine
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio


async def _status(host: str, container_id: str) -> str | None:
    async with docker_client(host) as client:
        for container in await client.containers.list(all=True):
            if str(container.id) == container_id:
                info: dict[str, Any] = container._container
                return str(info.get("State"))
    return None


def _options(name: str) -> dict[str, Any]:
    return {"backends": factories(), "models": {"default": fake_model}, "host": name}


def _config(engine: Engine) -> DurableConfig:
    spec = BackendSpec("docker", {"image": engine.image, "docker_host": engine.host})
    return DurableConfig(backends=[spec])


async def test_the_container_outlives_its_worker_and_another_worker_reattaches(
    temporal_client: Client, task_queue: str, docker_engine: Engine
) -> None:
    """Worker one creates the container and stops; worker two uses the same container by id."""
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("one")):
        session = await DurableSession.start(
            temporal_client, _config(docker_engine), task_queue=task_queue
        )
        await session.chat("bash: echo kept > a.txt")
        state = (await session.state())["states"][0]
    container_id = state["container_id"]
    assert state["docker_host"] == docker_engine.host
    assert await _status(docker_engine.host, container_id) == "running"  # worker one is gone
    # Sweeping by owner process leaves it (it belongs to a session); so does a live session.
    only_this = {"docker_host": docker_engine.host, "session_id": session.session_id}
    assert await sweep_orphans(**only_this, other_hosts_older_than=0) == []
    assert await sweep_orphans(**only_this, session_alive=session_alive(temporal_client)) == []
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("two")):
        reply = await session.chat("bash: cat a.txt")
        assert reply.text == "got: kept\n"
        assert (await session.state())["states"][0]["container_id"] == container_id
        await session.close()
    assert await _status(docker_engine.host, container_id) is None  # close removed it


async def test_a_gone_container_is_a_clear_error_and_a_closed_sessions_container_is_swept(
    temporal_client: Client, task_queue: str, docker_engine: Engine
) -> None:
    """Removed under the session: ContainerDiedError; a finished session's container: an orphan."""
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("one")):
        session = await DurableSession.start(
            temporal_client, _config(docker_engine), task_queue=task_queue
        )
        await session.chat("bash: true")
        container_id = (await session.state())["states"][0]["container_id"]
    async with docker_client(docker_engine.host) as client:
        await client.containers.container(container_id).delete(force=True, v=True)
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("two")):
        with pytest.raises(ContainerDiedError, match="is gone"):
            await session.chat("bash: ls")
        assert (await session.history())[-1].role == "user"  # the call answered as cancelled
        await session.close()
    # A second session whose workflow ends without closing its backends: its container is swept.
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("one")):
        other = await DurableSession.start(
            temporal_client, _config(docker_engine), task_queue=task_queue
        )
        await other.chat("bash: true")
        kept = (await other.state())["states"][0]["container_id"]
        await temporal_client.get_workflow_handle(other.session_id).terminate("test")
    removed = await sweep_orphans(
        docker_engine.host,
        session_id=other.session_id,
        session_alive=session_alive(temporal_client),
    )
    assert removed == [kept]


async def test_a_kept_containers_bash_call_with_a_repeated_key_runs_once(
    docker_engine: Engine,
) -> None:
    """A finished call retried returns its record (kept in the container, not the workspace)."""
    import anyio

    from conjure_async._logging import get_logger
    from conjure_async.backends import (
        BackendContext,
        DockerBackend,
        ToolCall,
        ToolContext,
        ToolResult,
    )

    backend = DockerBackend(
        image=docker_engine.image, docker_host=docker_engine.host, keep_container=True
    )
    call = ToolCall("toolu_1", "bash_tool", {"command": "echo ran >> log.txt; wc -l < log.txt"})

    async def run(key: str | None) -> ToolResult:
        ctx: ToolContext[None] = ToolContext("s1", call.id, call.name, get_logger(), None, key)
        found = [e async for e in backend.run_tool(call, ctx) if isinstance(e, ToolResult)]
        return found[0]

    async with anyio.create_task_group() as tg:
        await backend.open(BackendContext("kept-records", tg, get_logger()))
        try:
            once = await run("wf/toolu_1")
            again = await run("wf/toolu_1")
            other = await run("wf/toolu_2")
            plain = await run(None)
            call = ToolCall("toolu_3", "bash_tool", {"command": "ls -A"})
            listing = await run(None)
        finally:
            await backend.remove_container()
            await backend.aclose()
    assert once.output.strip() == again.output.strip() == "1"
    assert other.output.strip() == "2"
    assert plain.output.strip() == "3"
    assert [f.name for f in once.files] == ["log.txt"]
    assert listing.output.split() == ["log.txt"]  # the records never entered the workspace
