"""Approvals that wait, in durable sessions: the workflow waits for the decisions' update."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from conjure_async import Approve, Deny, SessionStateError
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession, conjure_worker
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio


async def test_a_pending_call_waits_across_workers_and_runs_once_approved(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """The turn stops with the call pending; no worker runs meanwhile; a new worker runs it."""
    workdir = tmp_path / "work"
    config = DurableConfig(
        backends=[BackendSpec("local", {"workdir": str(workdir)})], require_approval=["bash_tool"]
    )
    options = {"backends": factories(), "models": {"default": fake_model}, "host": "approvals"}
    async with conjure_worker(temporal_client, task_queue=task_queue, **options):  # type: ignore[arg-type]  # test options
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        reply = await session.chat("bash: echo approved > done.txt")
        assert reply.stop_reason == "tool_use"
        assert [(p.name, p.input["command"]) for p in reply.pending] == [
            ("bash_tool", "echo approved > done.txt")
        ]
        assert [p.call_id for p in await session.pending()] == [reply.pending[0].call_id]
        with pytest.raises(SessionStateError, match="await approval"):
            await session.chat("say: something else")
    assert not (workdir / "done.txt").exists()  # nothing ran; the worker is gone
    async with conjure_worker(temporal_client, task_queue=task_queue, **options):  # type: ignore[arg-type]  # test options
        session = DurableSession.attach(temporal_client, session.session_id)
        finished = await session.chat(approvals={reply.pending[0].call_id: Approve()})
        assert finished.text == "got: (no output)"
        assert (workdir / "done.txt").read_text() == "approved\n"
        assert await session.pending() == []
        denied = await session.chat("bash: rm done.txt")
        answered = await session.chat(approvals={denied.pending[0].call_id: Deny("not today")})
        assert answered.text == "got: not today"
        assert [c.is_error for c in answered.tool_calls] == [True]
        assert (workdir / "done.txt").exists()
        with pytest.raises(SessionStateError, match="no tool call awaits approval"):
            await session.chat(approvals={"toolu_nothing": Approve()})
        await session.close()
