"""Durable sessions on a real Temporal server: turns, state, continue-as-new."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from conjure_async.temporal import (
    BackendSpec,
    DurableConfig,
    DurableSession,
    SessionWorkflow,
    conjure_worker,
)
from conjure_async.temporal._worker import workflow_runner
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio


def _config(workdir: Path, **options: object) -> DurableConfig:
    return DurableConfig(
        backends=[BackendSpec("native"), BackendSpec("local", {"workdir": str(workdir)})],
        **options,  # type: ignore[arg-type]  # test options
    )


async def test_multi_turn_chat_with_native_and_local_tools(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Three turns in the workflow: a native call, a Local command, text; state by query."""
    async with conjure_worker(
        temporal_client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        session = await DurableSession.start(
            temporal_client, _config(tmp_path / "work"), task_queue=task_queue
        )
        first = await session.chat("add: 2 40")
        assert first.text == "got: 42"
        assert [(c.name, c.backend, c.output) for c in first.tool_calls] == [
            ("add", "native", "42")
        ]
        second = await session.chat("bash: echo durable > out.txt && cat out.txt")
        assert second.text == "got: durable\n"
        assert [f.name for f in second.files] == ["out.txt"]
        assert (tmp_path / "work" / "out.txt").read_text() == "durable\n"
        third = await session.chat("say: bye")
        assert third.text == "bye"
        history = await session.history()
        assert [m.role for m in history] == ["user", "assistant", "user", "assistant"] * 2 + [
            "user",
            "assistant",
        ]
        usage = await session.usage()
        assert usage.input_tokens == 50  # five model calls of 10
        state = await session.state()
        assert state["turns"] == 3
        assert [f["name"] for f in state["engine"]["files"]] == ["out.txt"]
        final = await session.close()
        assert final["turns"] == 3
        history_of_run = await temporal_client.get_workflow_handle(
            session.session_id
        ).fetch_history()
    # The recorded history replays on a fresh worker: the workflow is deterministic.
    replayer = Replayer(workflows=[SessionWorkflow], workflow_runner=workflow_runner())
    await replayer.replay_workflow(history_of_run)


async def test_continue_as_new_keeps_the_history(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """With one turn per run, every turn starts a new run from the snapshot; nothing is lost."""
    async with conjure_worker(
        temporal_client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        session = await DurableSession.start(
            temporal_client, _config(tmp_path / "work", turns_per_run=1), task_queue=task_queue
        )
        handle = temporal_client.get_workflow_handle(session.session_id)
        first_run = (await handle.describe()).run_id
        for number in range(3):
            reply = await session.chat(f"add: {number} 1")
            assert reply.text == f"got: {number + 1}"
        state = await session.state()
        assert state["runs"] == 3  # three continue-as-new: the fourth run serves now
        assert (await handle.describe()).run_id != first_run
        history = await session.history()
        assert len(history) == 12
        assert [m.content for m in history[::4]] == ["add: 0 1", "add: 1 1", "add: 2 1"]
        await session.close()


async def test_local_activities_run_model_and_tool_calls_in_the_workflow_worker(
    temporal_client: Client, task_queue: str
) -> None:
    """With local_activities, no activity task is scheduled: each step is a marker."""
    async with conjure_worker(
        temporal_client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        config = DurableConfig(backends=[BackendSpec("native")], local_activities=True)
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        reply = await session.chat("add: 20 22")
        assert reply.text == "got: 42"
        history = await temporal_client.get_workflow_handle(session.session_id).fetch_history()
        await session.close()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["conjure.open"]  # model and tool calls ran as local activities
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert len(markers) == 3  # two model calls, one tool call
