"""Sessions across tasks: a clear error instead of anyio's; ``stream()`` as a context manager."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from conjure_async import Session, SessionStateError
from conjure_async.backends import NativeBackend
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


async def _close_elsewhere(session: Session[Any], errors: list[BaseException]) -> None:
    try:
        await session.__aexit__(None, None, None)
    except BaseException as exc:
        errors.append(exc)


async def test_closing_from_another_task_raises_a_clear_error_and_frees_the_backends() -> None:
    """Opened in one task, closed in another: SessionStateError naming the fix; backends closed."""
    backend = FuncBackend({})
    session = Session(backend, model=ScriptedModel([text_response("hi")]))
    await session.__aenter__()  # e.g. an application's startup task
    assert (await session.chat("hello")).text == "hi"
    errors: list[BaseException] = []
    async with anyio.create_task_group() as tg:  # e.g. a request task closing it
        tg.start_soon(_close_elsewhere, session, errors)
        tg.start_soon(_close_elsewhere, session, errors)  # twice: the same clear error
    assert [type(e) for e in errors] == [SessionStateError, SessionStateError]
    assert "closed from another task" in str(errors[0])
    assert "open and close a session in one task" in str(errors[0])
    assert backend.closed == 1
    with pytest.raises(SessionStateError, match="closed"):
        await session.chat("again")


async def test_a_stream_closed_by_its_context_manager_cancels_the_turn() -> None:
    """Leaving ``async with session.stream(...)`` early stops the running tool and the turn."""
    started, stopped = anyio.Event(), anyio.Event()

    async def wait() -> str:
        """Waits until cancelled."""
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        return "never"

    model = ScriptedModel([tool_use_response(tool_call("wait")), text_response("next")])
    async with Session(NativeBackend(wait), model=model) as session:
        async with session.stream("go") as events:
            async for event in events:
                if event.kind == "tool_started":
                    break
        await started.wait()
        assert stopped.is_set()
        reply = await session.chat("and now?")
    assert reply.text == "next"
    history = session.history
    assert history[2].role == "user"  # the cancelled call was answered


async def test_a_stream_read_to_its_end_inside_the_context_manager() -> None:
    """The context manager reads like the plain iterator and closes cleanly at the end."""
    model = ScriptedModel([text_response("hello"), text_response("hello again")])
    async with Session(model=model) as session:
        async with session.stream("hi") as events:
            kinds = [event.kind async for event in events]
        plain: list[Any] = [event.kind async for event in session.stream("again")]
    assert kinds[-1] == "turn_finished"
    assert plain[-1] == "turn_finished"
