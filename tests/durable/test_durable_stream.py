"""Events of a durable turn reach the application while it runs (a polled query)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from conjure_async.events import ToolFinished, TurnFinished
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession, conjure_worker
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio


async def test_stream_yields_the_turns_events_before_it_ends(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Step 1's tool_finished arrives while step 2 still sleeps; turn_finished comes last."""
    gate = tmp_path / "gate"
    config = DurableConfig(backends=[BackendSpec("local", {"workdir": str(tmp_path / "work")})])
    async with conjure_worker(
        temporal_client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        kinds: list[str] = []
        command = f"steps: 2 [ {{i}} = 1 ] || until [ -e {gate} ]; do sleep 0.05; done"
        async for event in session.stream(command):
            kinds.append(event.kind)
            if isinstance(event, ToolFinished) and not gate.exists():
                # Step 2 waits for this file: the event came while the turn ran.
                gate.touch()
            if isinstance(event, TurnFinished):
                assert event.reply.text == "done"
        assert kinds == [
            "model_responded",
            "tool_started",
            "tool_finished",
            "model_responded",
            "tool_started",
            "tool_finished",
            "text_delta",
            "model_responded",
            "turn_finished",
        ]
        await session.close()
