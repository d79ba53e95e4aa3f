"""A session bound to a store: saved after each tool result and turn, continued anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from conjure_async import ConversationConflictError, Session
from conjure_async.backends import NativeBackend
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.store import MemoryStore, SQLiteStore
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.conversations.crash import kill_once_saved, tool_results
from tests.helpers import FuncBackend

pytestmark = pytest.mark.anyio


async def echo(text: str) -> str:
    """Echo the text."""
    return f"echo {text}"


def said(request: MessagesRequest) -> MessagesResponse:
    """A model that answers with how many messages it received."""
    return text_response(f"{len(request.messages)} messages")


async def test_a_new_session_on_the_same_conversation_continues_it(store: Any) -> None:
    """Closed and reopened (another session object), the conversation goes on where it was."""
    first = ScriptedModel([tool_use_response(tool_call("echo", {"text": "a"})), said])
    async with Session(NativeBackend(echo), model=first, store=store, conversation_id="c1") as s:
        await s.chat("one")
        before = s.history
    second = ScriptedModel([said])
    async with Session(NativeBackend(echo), model=second, store=store, conversation_id="c1") as s:
        reply = await s.chat("two")
        assert s.history[: len(before)] == before
    assert reply.text == "5 messages"  # user, tool_use, result, answer, user
    row = await store.load("c1")
    assert row is not None
    assert row.version >= 3  # a save per tool result and per turn


async def test_each_tool_result_is_saved_while_the_turn_runs() -> None:
    """While a slow call runs, the store already holds the fast call's result."""
    store = MemoryStore()
    started = anyio.Event()
    release = anyio.Event()

    async def fast() -> str:
        """Fast."""
        return "fast done"

    async def slow() -> str:
        """Slow."""
        started.set()
        await release.wait()
        return "slow done"

    model = ScriptedModel(
        [tool_use_response(tool_call("fast", id="t_fast"), tool_call("slow", id="t_slow")), said]
    )
    async with (
        Session(NativeBackend(fast, slow), model=model, store=store, conversation_id="c") as s,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(s.chat, "go")
        await started.wait()
        row = None
        with anyio.fail_after(10):
            while row is None or "turn" not in row.state:
                await anyio.sleep(0.01)
                row = await store.load("c")
        turn = row.state["turn"]
        assert [r and r["content"] for r in turn["results"]] == ["fast done", None]
        release.set()


CRASHING = """
import sys, anyio
from conjure_async import Session
from conjure_async.backends import NativeBackend
from conjure_async.store import SQLiteStore
from conjure_async.testing import ScriptedModel, tool_call, tool_use_response

async def fast() -> str:
    \"\"\"Fast.\"\"\"
    return "fast done"

async def hang() -> str:
    \"\"\"Hangs until the process is killed.\"\"\"
    open(sys.argv[2], "w").write("hanging")
    await anyio.sleep_forever()

async def main() -> None:
    calls = [tool_call("fast", id="t1"), tool_call("hang", id="t2")]
    model = ScriptedModel([tool_use_response(*calls)])
    async with SQLiteStore(sys.argv[1]) as store:
        async with Session(NativeBackend(fast, hang), model=model, store=store,
                           conversation_id="c") as session:
            await session.chat("go")

anyio.run(main)
"""


async def test_a_process_killed_mid_turn_leaves_a_valid_history_with_its_results(
    tmp_path: Path,
) -> None:
    """SIGKILL during a call: the next session has the done call's result, the other cancelled."""
    db, marker = tmp_path / "c.db", tmp_path / "hanging"
    await kill_once_saved(CRASHING, db, marker, lambda state: "turn" in state)
    model = ScriptedModel([said])
    async with (
        SQLiteStore(db) as store,
        Session(
            NativeBackend(_fast_again(), _hang_again()),
            model=model,
            store=store,
            conversation_id="c",
        ) as session,
    ):
        results = tool_results(session.history)
        reply = await session.chat("are you there?")
    assert results == [
        ("t1", "fast done", None),
        ("t2", "Tool call cancelled before it finished.", True),
    ]
    assert reply.text == "3 messages"  # the new message joined the results' message


def _fast_again() -> Any:
    async def fast() -> str:
        """Fast."""
        return "fast done"

    return fast


def _hang_again() -> Any:
    async def hang() -> str:
        """Hang."""
        return "not hanging now"

    return hang


async def test_two_sessions_take_turns_on_one_conversation(tmp_path: Path) -> None:
    """Two open sessions (two workers) alternate: each chat starts from the other's last turn."""
    async with SQLiteStore(tmp_path / "c.db") as store:
        a = Session(
            NativeBackend(echo), model=ScriptedModel(said), store=store, conversation_id="c"
        )
        b = Session(
            NativeBackend(echo), model=ScriptedModel(said), store=store, conversation_id="c"
        )
        async with a, b:
            texts = [
                (await a.chat("1")).text,
                (await b.chat("2")).text,
                (await a.chat("3")).text,
                (await b.chat("4")).text,
            ]
    assert texts == ["1 messages", "3 messages", "5 messages", "7 messages"]


async def test_two_writers_at_once_the_loser_gets_a_conflict_and_the_winner_stays() -> None:
    """A chat that saves over a version another chat already replaced raises a conflict."""
    store = MemoryStore()
    entered, release = anyio.Event(), anyio.Event()

    async def wait() -> str:
        """Waits."""
        entered.set()
        await release.wait()
        return "waited"

    slow = ScriptedModel([tool_use_response(tool_call("wait")), said])
    quick = ScriptedModel([said])
    a = Session(NativeBackend(wait), model=slow, store=store, conversation_id="c")
    b = Session(NativeBackend(wait), model=quick, store=store, conversation_id="c")
    errors: list[BaseException] = []

    async def chat_a() -> None:
        try:
            await a.chat("from a")
        except ConversationConflictError as exc:
            errors.append(exc)

    async with a, b, anyio.create_task_group() as tg:
        tg.start_soon(chat_a)
        await entered.wait()
        await b.chat("from b")
        release.set()
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, ConversationConflictError)
    assert error.state is not None
    assert "from a" in json.dumps(error.state)  # the loser's turn is on the error
    row = await store.load("c")
    assert row is not None
    assert "from b" in json.dumps(row.state)
    assert "from a" not in json.dumps(row.state)


class StatefulBackend(FuncBackend):
    """A backend with state of its own (like the hosted container id)."""

    kind: ClassVar[str] = "func"

    def __init__(self) -> None:
        super().__init__({})
        self.container_id: str | None = None
        self.loaded_before_open: bool | None = None

    async def open(self, ctx: Any) -> None:
        await super().open(ctx)
        if self.loaded_before_open is None:
            self.loaded_before_open = False

    def dump_state(self) -> dict[str, Any]:
        return {"container_id": self.container_id}

    def load_state(self, state: dict[str, Any]) -> None:
        self.container_id = state.get("container_id")
        self.loaded_before_open = self.opened == 0


async def test_backend_state_is_saved_and_loaded_before_the_backend_opens() -> None:
    """The container id a backend holds travels with the conversation."""
    store = MemoryStore()
    first = StatefulBackend()
    async with Session(first, model=ScriptedModel(said), store=store, conversation_id="c") as s:
        first.container_id = "container_42"
        await s.chat("hi")
    second = StatefulBackend()
    async with Session(second, model=ScriptedModel(said), store=store, conversation_id="c"):
        pass
    assert (second.container_id, second.loaded_before_open) == ("container_42", True)


def test_a_store_needs_a_conversation_id_and_an_id_needs_a_store() -> None:
    """Half a binding is refused at construction, with the fix in the message."""
    with pytest.raises(ValueError, match="needs its conversation_id"):
        Session(model=ScriptedModel([]), store=MemoryStore())
    with pytest.raises(ValueError, match="needs a store"):
        Session(model=ScriptedModel([]), conversation_id="c")


async def test_a_conversation_deleted_elsewhere_starts_over() -> None:
    """Deleted by another process, the conversation's next chat begins a new history."""
    store = MemoryStore()
    async with Session(model=ScriptedModel(said), store=store, conversation_id="c") as s:
        await s.chat("one")
        await store.delete("c")
        reply = await s.chat("two")
    assert reply.text == "1 messages"
