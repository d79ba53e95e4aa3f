"""Durable sessions given bad input or missing parts: clear errors, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from conjure_async import Approve, BackendError, SessionStateError
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession, conjure_worker
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio


def _options(host: str = "hostile") -> dict[str, object]:
    return {"backends": factories(), "models": {"default": fake_model}, "host": host}


async def test_a_backend_kind_no_worker_knows_is_a_clear_error(
    temporal_client: Client, task_queue: str
) -> None:
    """The session cannot open: chat raises BackendError naming the kind and the known ones."""
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options()):  # type: ignore[arg-type]  # test options
        config = DurableConfig(backends=[BackendSpec("nope")])
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        with pytest.raises(BackendError, match=r"no backend factory for kind 'nope'.*'local'"):
            await session.chat("say: hi")


async def test_docker_without_keep_container_is_refused(
    temporal_client: Client, task_queue: str
) -> None:
    """A container that would die with its worker is refused before anything runs."""

    def docker(config: dict[str, object]) -> object:
        from conjure_async.backends import DockerBackend

        return DockerBackend()

    options = _options()
    options["backends"] = {"docker": docker}
    async with conjure_worker(temporal_client, task_queue=task_queue, **options):  # type: ignore[arg-type]  # test options
        config = DurableConfig(backends=[BackendSpec("docker")])
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        with pytest.raises(BackendError, match="keep_container=True"):
            await session.chat("say: hi")


async def test_bad_turns_are_refused_before_they_reach_the_history(
    temporal_client: Client, task_queue: str
) -> None:
    """Message and approvals together, approvals with nothing pending, a bad decision type."""
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options()):  # type: ignore[arg-type]  # test options
        config = DurableConfig(backends=[BackendSpec("native")])
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        await session.chat("add: 1 2")
        with pytest.raises(ValueError, match="not both"):
            await session.chat("say: x", approvals={"a": Approve()})
        with pytest.raises(TypeError, match="must be Approve"):
            await session.chat(approvals={"a": "yes"})
        before = await session.history()

        with pytest.raises(SessionStateError, match="no tool call awaits approval"):
            await session.chat(approvals={"a": Approve()})
        assert await session.history() == before
        await session.close()


async def test_a_local_call_no_worker_of_its_host_takes_fails_clearly(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """The host that opened the Local workspace is gone: the call fails after host_timeout."""
    config = DurableConfig(
        backends=[BackendSpec("local", {"workdir": str(tmp_path / "work")})], host_timeout=1.0
    )
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("host-a")):  # type: ignore[arg-type]  # test options
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        await session.chat("say: opened on host-a")
    async with conjure_worker(temporal_client, task_queue=task_queue, **_options("host-b")):  # type: ignore[arg-type]  # test options
        with pytest.raises(BackendError, match="no worker on host 'host-a'"):
            await session.chat("bash: echo never")
        assert not (tmp_path / "work" / "never").exists()
        history = await session.history()
        assert history[-1].role == "user"  # the call answered as not run
        # host-a is gone for good: its Local workspace cannot be closed from here.
        await temporal_client.get_workflow_handle(session.session_id).terminate("host-a gone")
