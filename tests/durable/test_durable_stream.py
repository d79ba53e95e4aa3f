"""Events of a durable turn reach the application while it runs (a polled query)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from temporalio.client import Client

from conjure_async import SessionStateError
from conjure_async.events import ToolFinished, TurnFinished
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession, conjure_worker
from conjure_async.temporal._spec import KEPT_TURNS
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model

pytestmark = pytest.mark.anyio

_GATED = "steps: 2 [ {{i}} = 1 ] || until [ -e {gate} ]; do sleep 0.05; done"
"""Two steps; step 2 waits until the file ``gate`` exists."""


def _local(tmp_path: Path) -> DurableConfig:
    """A session with a Local workspace below ``tmp_path``."""
    return DurableConfig(backends=[BackendSpec("local", {"workdir": str(tmp_path / "work")})])


@asynccontextmanager
async def _session(
    client: Client, task_queue: str, config: DurableConfig
) -> AsyncIterator[DurableSession]:
    """A durable session, served by a worker while the block runs."""
    async with conjure_worker(
        client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        yield await DurableSession.start(client, config, task_queue=task_queue)


async def test_stream_yields_the_turns_events_before_it_ends(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Step 1's tool_finished arrives while step 2 still sleeps; turn_finished comes last."""
    gate = tmp_path / "gate"
    async with _session(temporal_client, task_queue, _local(tmp_path)) as session:
        kinds: list[str] = []
        async for event in session.stream(_GATED.format(gate=gate)):
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


async def test_a_late_reader_of_a_rotated_out_turn_gets_a_clear_error(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """A reader paused while four more turns ran ends with SessionStateError, not a poll forever."""
    gate = tmp_path / "gate"
    async with _session(temporal_client, task_queue, _local(tmp_path)) as session:
        other = DurableSession.attach(temporal_client, session.session_id)
        late = session.stream(_GATED.format(gate=gate))
        while not isinstance(await anext(late), ToolFinished):
            pass  # step 2 waits for the gate: this reader has not seen the turn's end
        gate.touch()  # the turn runs on; this reader stops reading here
        for turn in range(KEPT_TURNS):  # another process's turns push this one's events out
            assert (await other.chat(f"say: turn {turn}")).text == f"turn {turn}"
        with anyio.fail_after(60):  # a guard against the defect (a poll forever), not a timing
            with pytest.raises(SessionStateError, match="no longer held") as caught:
                async for event in late:
                    assert not isinstance(event, TurnFinished)
        assert "history()" in str(caught.value)  # says how to read the outcome instead
        history = await session.history()
        assert history[5].content[0].text == "done"  # the turn itself went through
        await session.close()


async def test_a_stream_across_a_continue_as_new_ends_with_its_reply(
    temporal_client: Client, task_queue: str
) -> None:
    """The turn that makes the run continue as new still streams to its turn_finished."""
    config = DurableConfig(backends=[BackendSpec("native")], turns_per_run=1)
    async with _session(temporal_client, task_queue, config) as session:
        for turn in range(3):
            with anyio.fail_after(60):  # a guard, not a timing
                kinds = [event.kind async for event in session.stream(f"add: {turn} 1")]
            assert kinds[-1] == "turn_finished"
        assert (await session.state())["runs"] == 3
        await session.close()
