"""A bound session saves only what changed (ADR 0019), and every load is its whole state."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async import ConversationConflictError, Session
from conjure_async.backends import NativeBackend
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.store import SessionStore, SQLiteStore, StoredConversation
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.conversations.crash import kill_once_saved, tool_results

pytestmark = pytest.mark.anyio


async def echo(text: str) -> str:
    """Echo the text."""
    return f"echo {text}"


def said(request: MessagesRequest) -> MessagesResponse:
    """A model that answers with how many messages it received."""
    return text_response(f"{len(request.messages)} messages")


class Recording(SessionStore):
    """A real store, recording each append and checking each load against ``dump_state``.

    At every append (also mid-turn) the session's whole state is taken as
    ``Session.dump_state`` has it; once saved, the store must load exactly it.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.session: Session[Any] | None = None
        self.appends: list[tuple[int, int]] = []
        """(kept, new messages) per append."""

    async def append(
        self, conversation_id: str, state: Mapping[str, Any], *, version: int, kept: int
    ) -> int:
        expected = self.session.dump_state() if self.session is not None else None
        self.appends.append((kept, len(state["messages"])))
        saved = await self.inner.append(conversation_id, state, version=version, kept=kept)
        if expected is not None:
            row = await self.inner.load(conversation_id)
            assert row is not None
            assert row.state == expected
            assert json.dumps(row.state) == json.dumps(expected)  # the key order too
        return saved

    async def load(self, conversation_id: str) -> StoredConversation | None:
        return await self.inner.load(conversation_id)

    async def save(self, conversation_id: str, state: Mapping[str, Any], *, version: int) -> int:
        raise AssertionError("a bound session appends")

    async def delete(self, conversation_id: str, *, version: int | None = None) -> bool:
        return await self.inner.delete(conversation_id, version=version)

    async def list(self, *, prefix: str = "", limit: int = 1000) -> list[str]:
        return await self.inner.list(prefix=prefix, limit=limit)

    async def aclose(self) -> None:
        """The inner store is the fixture's."""


def _cuts(appends: list[tuple[int, int]]) -> list[int]:
    """The appends that kept fewer messages than the store held (a replaced tail)."""
    held, cuts = 0, []
    for i, (kept, new) in enumerate(appends):
        if 0 < kept < held:
            cuts.append(i)
        held = kept + new
    return cuts


async def test_each_save_writes_only_the_messages_added_since_the_last(store: Any) -> None:
    """Two turns, then a new session: after the first, no save rewrites a stored message."""
    recording = Recording(store)
    script = [
        tool_use_response(tool_call("echo", {"text": "a"})),
        said,
        tool_use_response(tool_call("echo", {"text": "b"})),
        tool_use_response(tool_call("echo", {"text": "c"})),
        said,
    ]
    session = Session(
        NativeBackend(echo), model=ScriptedModel(script), store=recording, conversation_id="c"
    )
    recording.session = session
    async with session:
        await session.chat("one")
        await session.chat("two")
        history = len(session.history)
    assert recording.appends[0][0] == 0  # the first save writes it all
    assert all(kept > 0 for kept, _ in recording.appends[1:]), recording.appends
    assert sum(new for _, new in recording.appends) == history  # each message written once
    recording.appends.clear()
    again = Session(
        NativeBackend(echo), model=ScriptedModel([said]), store=recording, conversation_id="c"
    )
    recording.session = again
    async with again:
        await again.chat("three")
    assert recording.appends == [(history, 2)]  # after a load: the new message and the answer


async def test_a_tail_replaced_after_a_cancelled_turn_is_written_again(store: Any) -> None:
    """A message joining the cancelled turn's results replaces a stored message: it is rewritten."""
    recording = Recording(store)
    entered = anyio.Event()

    async def hang() -> str:
        """Hangs."""
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError

    model = ScriptedModel([tool_use_response(tool_call("hang")), said])
    session = Session(NativeBackend(hang), model=model, store=recording, conversation_id="c")
    recording.session = session
    async with session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "one")
            await entered.wait()
            tg.cancel_scope.cancel()
        reply = await session.chat("two")
    assert reply.text == "3 messages"  # "two" joined the cancelled call's result message
    assert _cuts(recording.appends), recording.appends


async def test_a_replaced_message_in_the_middle_rewrites_from_there(store: Any) -> None:
    """History changed other than at its end (e.g. by a hook): written again from the change."""
    recording = Recording(store)
    model = ScriptedModel([tool_use_response(tool_call("echo", {"text": "a"})), said, said])
    session = Session(NativeBackend(echo), model=model, store=recording, conversation_id="c")
    recording.session = session
    async with session:
        await session.chat("one")
        engine: Any = session._engine
        engine._history[1] = engine._history[1].model_copy()  # a new object, the same message
        await session.chat("two")
    assert recording.appends[-1] == (1, 5), recording.appends  # rewritten from message 1 on


async def test_a_conflict_carries_the_whole_state_not_only_the_new_messages() -> None:
    """The loser of two writers gets its whole history on the error, kept messages included."""
    async with SQLiteStore(":memory:") as inner:
        entered, release = anyio.Event(), anyio.Event()

        async def wait() -> str:
            """Waits."""
            entered.set()
            await release.wait()
            return "waited"

        slow = ScriptedModel([said, tool_use_response(tool_call("wait")), said])
        a = Session(NativeBackend(wait), model=slow, store=inner, conversation_id="c")
        quick = ScriptedModel([said])
        b = Session(NativeBackend(wait), model=quick, store=inner, conversation_id="c")
        errors: list[ConversationConflictError] = []

        async def chat_a() -> None:
            try:
                await a.chat("from a, second")
            except ConversationConflictError as exc:
                errors.append(exc)

        async with a, b:
            await a.chat("from a, first")
            async with anyio.create_task_group() as tg:
                tg.start_soon(chat_a)
                await entered.wait()
                await b.chat("from b")
                release.set()
            whole = a.dump_state()
    assert len(errors) == 1
    state = errors[0].state
    assert state is not None
    assert "from a, first" in json.dumps(state["messages"][0])  # a kept message, on the error
    assert state["messages"] == whole["messages"][: len(state["messages"])]


CRASHING = """
import sys
import anyio
from conjure_async import Session
from conjure_async.backends import NativeBackend
from conjure_async.store import SQLiteStore
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

async def echo(text: str) -> str:
    \"\"\"Echo.\"\"\"
    return f"echo {text}"

async def fast() -> str:
    \"\"\"Fast.\"\"\"
    return "fast done"

async def hang() -> str:
    \"\"\"Hangs until the process is killed.\"\"\"
    open(sys.argv[2], "w").write("hanging")
    await anyio.sleep_forever()

async def main() -> None:
    model = ScriptedModel([
        tool_use_response(tool_call("echo", {"text": "a"}, id="t0")),
        text_response("first done"),
        tool_use_response(tool_call("fast", id="t1"), tool_call("hang", id="t2")),
    ])
    async with SQLiteStore(sys.argv[1]) as store:
        async with Session(NativeBackend(echo, fast, hang), model=model, store=store,
                           conversation_id="c") as session:
            await session.chat("one")
            await session.chat("go")

anyio.run(main)
"""


async def test_a_process_killed_mid_turn_after_appends_leaves_a_valid_history(
    tmp_path: Path,
) -> None:
    """SIGKILL in a second turn, saves appending: turn one, t1's result, t2 cancelled."""
    db, marker = tmp_path / "c.db", tmp_path / "hanging"
    await kill_once_saved(
        CRASHING, db, marker, lambda state: "turn" in state and "fast done" in json.dumps(state)
    )
    with sqlite3.connect(db) as raw:
        logged = raw.execute("SELECT logged FROM conjure_conversations").fetchone()
    raw.close()
    assert logged is not None
    assert logged[0] >= 4  # the first turn's messages, in the log

    async def fast() -> str:
        """Fast."""
        return "fast done"

    async def hang() -> str:
        """Hang."""
        return "not hanging now"

    async with (
        SQLiteStore(db) as store,
        Session(
            NativeBackend(echo, fast, hang),
            model=ScriptedModel([said]),
            store=store,
            conversation_id="c",
        ) as session,
    ):
        results = tool_results(session.history)
        reply = await session.chat("are you there?")
        assert (await store.load("c")) is not None
    assert results == [
        ("t0", "echo a", None),
        ("t1", "fast done", None),
        ("t2", "Tool call cancelled before it finished.", True),
    ]
    assert reply.text == "7 messages"
