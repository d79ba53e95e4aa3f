"""Three pipelines (sessions) running at once in one task group, one failing."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from conjure_async import APIConnectionError, Reply, Session
from conjure_async.backends import NativeBackend, tool
from conjure_async.messages import MessagesRequest
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio

NAMES = ("api", "worker", "billing")


class Meeting:
    """Lets each pipeline's tool wait until all three are inside their tool call.

    Reaching the meeting at all proves that the pipelines run concurrently: run
    one after the other, the first would wait forever (bounded by fail_after).
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived: list[str] = []
        self.everyone = anyio.Event()

    async def meet(self, name: str) -> None:
        self.arrived.append(name)
        if len(self.arrived) == self.expected:
            self.everyone.set()
        with anyio.fail_after(10):
            await self.everyone.wait()


def pipeline_backend(meeting: Meeting, cancelled: list[str], *, block: bool) -> NativeBackend:
    @tool
    async def step(name: str) -> str:
        """Do the stage's work."""
        try:
            await meeting.meet(name)
            if block:
                await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(name)
            raise
        return f"{name} done"

    return NativeBackend(step)


def failing_after_meeting(meeting: Meeting) -> ScriptedModel:
    """A model that calls the tool, then fails with an API error once everyone met."""

    async def fail(request: MessagesRequest) -> Any:
        await meeting.everyone.wait()
        raise APIConnectionError("connection reset by peer")

    return ScriptedModel([tool_use_response(tool_call("step", {"name": "billing"})), fail])


def succeeding(name: str) -> ScriptedModel:
    return ScriptedModel(
        [tool_use_response(tool_call("step", {"name": name})), text_response(f"{name} ok")]
    )


async def test_fail_fast_a_failing_pipeline_cancels_the_others() -> None:
    meeting = Meeting(expected=3)
    cancelled: list[str] = []
    finished: list[str] = []

    async def pipeline(name: str) -> None:
        if name == "billing":
            model = failing_after_meeting(meeting)
        else:
            model = succeeding(name)
        backend = pipeline_backend(meeting, cancelled, block=name != "billing")
        async with Session(backend, model=model) as session:
            await session.chat(f"run {name}")
        finished.append(name)

    with pytest.RaisesGroup(pytest.RaisesExc(APIConnectionError, match="connection reset")):
        async with anyio.create_task_group() as tg:
            for name in NAMES:
                tg.start_soon(pipeline, name)
    assert sorted(meeting.arrived) == sorted(NAMES)
    assert sorted(cancelled) == ["api", "worker"]
    assert finished == []


async def test_isolated_a_failing_pipeline_leaves_the_others_finishing() -> None:
    meeting = Meeting(expected=3)
    cancelled: list[str] = []
    outcomes: dict[str, Reply | Exception] = {}

    async def pipeline(name: str) -> None:
        model = failing_after_meeting(meeting) if name == "billing" else succeeding(name)
        backend = pipeline_backend(meeting, cancelled, block=False)
        try:
            async with Session(backend, model=model) as session:
                outcomes[name] = await session.chat(f"run {name}")
        except Exception as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        for name in NAMES:
            tg.start_soon(pipeline, name)
    assert sorted(meeting.arrived) == sorted(NAMES)
    assert cancelled == []
    summary = {
        name: type(o).__name__ if isinstance(o, Exception) else o.text
        for name, o in outcomes.items()
    }
    assert summary == {"api": "api ok", "worker": "worker ok", "billing": "APIConnectionError"}


async def test_cancelling_the_whole_pipeline_stops_isolated_pipelines_too() -> None:
    meeting = Meeting(expected=3)
    cancelled: list[str] = []
    outcomes: dict[str, Reply | Exception] = {}

    async def pipeline(name: str) -> None:
        backend = pipeline_backend(meeting, cancelled, block=True)
        try:
            async with Session(backend, model=succeeding(name)) as session:
                outcomes[name] = await session.chat(f"run {name}")
        except Exception as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        for name in NAMES:
            tg.start_soon(pipeline, name)
        await meeting.everyone.wait()
        tg.cancel_scope.cancel()
    assert sorted(cancelled) == sorted(NAMES)
    assert outcomes == {}
