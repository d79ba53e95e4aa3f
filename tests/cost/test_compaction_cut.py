"""After a compaction, requests start at the last compaction block; the history keeps everything."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conjure_async import Compaction, PromptCaching, Session
from conjure_async._history_scan import HistoryScan, has_mark
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, ScriptedModel, text_response
from conjure_async.testing._fake._http import HTTPError
from conjure_async.testing._fake._validate import check_request
from tests.anthropic.constants import API_KEY
from tests.cost.support import SYSTEM, breakpoints, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]

TRIGGER = 50_000
BIG = 20_000
SUMMARY = {"type": "compaction", "content": "Summary: items 0-3 checked.", "encrypted_content": "e"}
MARK = {"type": "ephemeral"}


def _starts_with_compaction(body: dict[str, Any]) -> bool:
    first = body["messages"][0]
    return first["role"] == "assistant" and first["content"][0]["type"] == "compaction"


@pytest.mark.parametrize("pause_after", [False, True])
async def test_requests_after_a_compaction_start_at_its_block(
    server: FakeAnthropicServer, model_factory: ModelFactory, pause_after: bool
) -> None:
    """Past the trigger, requests begin at the compaction block; the history keeps everything."""
    server.queue(*[tool_loop(14)] * 16)
    async with Session(
        lookup_backend(size=BIG),
        model=model_factory(model="claude-sonnet-4-6"),
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER, pause_after=pause_after),
    ) as session:
        reply = await session.chat("Check fourteen items")  # the fake refuses a bad cut
        history = session.history
        state = session.dump_state()

    assert reply.stop_reason == "end_turn"
    bodies = server.message_bodies
    first_cut = next(i for i, body in enumerate(bodies) if _starts_with_compaction(body))
    assert all(body["messages"][0]["role"] == "user" for body in bodies[:first_cut])
    assert all(_starts_with_compaction(body) for body in bodies[first_cut:])
    assert len(bodies[-1]["messages"]) < len(history)
    assert history[0].role == "user"  # the history keeps the start of the conversation
    assert len(state["messages"]) == len(history)
    sizes = [len(request.body) for request in server.message_requests]
    assert sizes[first_cut] < sizes[first_cut - 1]  # the request shrank


def _response(*blocks: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {"content": list(blocks), "stop_reason": stop}


async def test_a_cut_inside_a_message_sends_the_message_from_the_block_on() -> None:
    """A compaction block after other blocks of its message: the request starts at the block."""
    search = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
    model = ScriptedModel(
        [
            _response({"type": "text", "text": "First."}),
            _response(search, result, SUMMARY, {"type": "text", "text": "Searched."}),
            _response({"type": "text", "text": "Third."}),
        ]
    )
    async with Session(model=model, compaction=Compaction(trigger=TRIGGER)) as session:
        for text in ("One", "Two", "Three"):
            await session.chat(text)
        history = session.history

    sent = model.requests[-1].messages
    assert [m.role for m in sent] == ["assistant", "user"]
    assert [b.type for b in sent[0].content] == ["compaction", "text"]  # type: ignore[union-attr]
    assert [b.type for b in history[3].content] == [  # type: ignore[union-attr]
        "server_tool_use",
        "web_search_tool_result",
        "compaction",
        "text",
    ]
    check_request(json.loads(model.requests[-1].body_json()))  # what the fake API accepts


async def test_a_failed_compaction_cuts_nothing_and_without_compaction_nothing_is_cut() -> None:
    """A ``content: null`` block is a no-op; a session without ``compaction=`` sends everything."""
    failed = {"type": "compaction", "content": None}
    script = [
        _response(SUMMARY, {"type": "text", "text": "A."}),
        _response(failed, {"type": "text", "text": "B."}),
        _response({"type": "text", "text": "C."}),
    ]
    on = ScriptedModel(list(script))
    off = ScriptedModel(list(script))
    async with Session(model=on, compaction=Compaction(trigger=TRIGGER)) as session:
        for text in ("One", "Two", "Three"):
            await session.chat(text)
    async with Session(model=off) as session:
        for text in ("One", "Two", "Three"):
            await session.chat(text)

    assert [m.role for m in on.requests[-1].messages] == ["assistant", "user", "assistant", "user"]
    assert on.requests[-1].messages[0].content[0].type == "compaction"  # type: ignore[union-attr]
    assert len(off.requests[-1].messages) == 5


async def test_user_breakpoints_before_the_cut_are_not_counted(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Marks on dropped messages leave the request: the session's own fill the 4 again."""
    content = [{"type": "text", "text": "Reference " + "r" * 4000, "cache_control": MARK}]
    server.queue(*[tool_loop(14)] * 16)
    async with Session(
        lookup_backend(size=BIG),
        model=model_factory(model="claude-sonnet-4-6"),
        system=SYSTEM,
        max_iterations=30,
        compaction=Compaction(trigger=TRIGGER),
    ) as session:
        await session.chat([*content, {"type": "text", "text": "Check fourteen items"}])

    bodies = server.message_bodies
    first = [_starts_with_compaction(body) for body in bodies].index(True)
    for body in bodies[:first]:  # the user's own kept, the session's previous-tail one gives way
        assert breakpoints(body)[2:] == ["message:0", f"message:{len(body['messages']) - 1}"]
    for body in bodies[first:]:
        assert "Reference" not in json.dumps(body["messages"])
    for body in bodies[first + 1 :]:  # room again for both of the session's message breakpoints
        assert [p for p in breakpoints(body) if p.startswith("message")] == [
            f"message:{len(body['messages']) - 3}",
            f"message:{len(body['messages']) - 1}",
        ]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (
            [{"role": "assistant", "content": [{"type": "text", "text": "Hi."}]}],
            'first message must use the "user" role',
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
                }
            ],
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_1",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": [
                        SUMMARY,
                        {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
                    ],
                },
                {"role": "user", "content": "Go on."},
            ],
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_2",
        ),
    ],
)
async def test_the_fake_refuses_a_request_cut_in_the_wrong_place(
    messages: list[dict[str, Any]], error: str
) -> None:
    """A request starting after the block, or splitting a call from its result, is a 400."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": messages}
    async with FakeAnthropicServer(api_key=API_KEY) as server, httpx2.AsyncClient() as client:
        server.queue(text_response("unused"))
        response = await client.post(
            f"{server.base_url}/v1/messages",
            json=body,
            headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 400
    assert error in response.json()["error"]["message"]


def test_the_fake_accepts_a_request_starting_at_the_compaction_block() -> None:
    """The documented cut: the assistant message holding the block first, its calls answered."""
    call = {"type": "tool_use", "id": "toolu_3", "name": "f", "input": {}}
    check_request(
        {
            "messages": [
                {"role": "assistant", "content": [SUMMARY, call]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]},
            ]
        }
    )
    with pytest.raises(HTTPError, match="A maximum of 4 blocks with cache_control"):
        marked = {"type": "text", "text": "x", "cache_control": MARK}
        check_request({"messages": [{"role": "user", "content": [marked] * 5}]})


# -- the incremental scan, against a scan from scratch ------------------------------------

_BLOCK = st.sampled_from(["text", "marked", "summary", "failed"])


def _block(kind: str, n: int) -> dict[str, Any]:
    if kind == "summary":
        return {"type": "compaction", "content": f"S{n}"}
    if kind == "failed":
        return {"type": "compaction", "content": None}
    text = {"type": "text", "text": f"t{n}"}
    return text | {"cache_control": MARK} if kind == "marked" else text


def _expected(history: list[Message]) -> tuple[tuple[int, int] | None, int]:
    cut = None
    for index, message in enumerate(history):
        for position, block in enumerate(message.content):  # type: ignore[arg-type]
            if block.type == "compaction" and getattr(block, "content", None) is not None:
                cut = (index, position)
    start, first = cut or (0, 0)
    marks = sum(
        has_mark(block)
        for index, message in enumerate(history[start:], start)
        for position, block in enumerate(message.content)  # type: ignore[arg-type]
        if index > start or position >= first
    )
    return cut, marks


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "replace", "truncate", "restore"]),
            st.lists(_BLOCK, min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_the_incremental_scan_matches_a_scan_from_scratch(
    steps: list[tuple[str, list[str]]],
) -> None:
    """Appends, a replaced last message, a shorter history, a new one: cut and count stay exact."""
    scan = HistoryScan()
    history: list[Message] = []
    for n, (action, kinds) in enumerate(steps):
        message = Message.model_validate(
            {"role": "assistant", "content": [_block(kind, n) for kind in kinds]}
        )
        if action == "replace" and history:
            history[-1] = message
        elif action == "truncate" and len(history) > 1:
            del history[len(history) // 2 :]
        elif action == "restore":
            history = [Message.model_validate(m.to_wire()) for m in history]
        else:
            history.append(message)
        scan.update(history)
        cut, marks = _expected(history)
        assert scan.cut == cut
        assert scan.marks_from(*(cut or (0, 0))) == marks


def test_shaping_never_changes_the_history_list() -> None:
    """The request's list is replaced, not edited: the history's own list keeps every message."""
    history = [
        Message.model_validate({"role": "user", "content": "One"}),
        Message.model_validate(
            {"role": "assistant", "content": [SUMMARY, {"type": "text", "text": "A"}]}
        ),
        Message.model_validate({"role": "user", "content": "Two"}),
    ]
    before = list(history)
    request = MessagesRequest._fast(
        model="m",
        max_tokens=1,
        messages=history,
        system=None,
        tools=None,
        tool_choice=None,
        container=None,
        stream=None,
        betas=[],
    )
    from conjure_async._caching import CacheMarker

    HistoryScan().shape(request, CacheMarker(PromptCaching()), compacted=True)

    assert all(a is b for a, b in zip(history, before, strict=True))
    assert len(history) == len(before)
    assert len(request.messages) == 2
    assert request.messages[0].content[0].type == "compaction"  # type: ignore[union-attr]
