"""Breakpoints of the user's own, anywhere in a request, count toward the API's 4."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conjure_async import BadRequestError, PromptCaching, Session
from conjure_async._caching import CacheMarker
from conjure_async.backends import Backend
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, text_response
from conjure_async.testing._fake._validate import count_marks
from tests.cost.support import SYSTEM, breakpoints, lookup_backend

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]

MARK = {"type": "ephemeral"}


def _marked_text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": MARK}, {"type": "text", "text": "go"}]


async def test_a_user_breakpoint_on_an_old_message_still_counts(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """A marked first message, many turns later: the request still carries 4 breakpoints, not 5."""
    server.queue(*[text_response(f"Answer {i}.") for i in range(6)])
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as session:
        await session.chat(_marked_text("Reference: " + "r" * 6000))
        for i in range(5):
            reply = await session.chat(f"Question {i}")  # the fake answers 400 past 4

    assert reply.stop_reason == "end_turn"
    last = server.message_bodies[-1]
    assert breakpoints(last) == ["tool:lookup", "system", "message:0", "message:10"]


class _MarkingBackend(Backend):
    """A backend that adds a marked tool definition and a marked system block to each request."""

    kind = "marking"

    def prepare_request(self, request: MessagesRequest) -> MessagesRequest:
        tools = [*(request.tools or ()), {**_NOTE, "cache_control": MARK}, _EXTRA]
        system = [
            {"type": "text", "text": SYSTEM, "cache_control": MARK},
            {"type": "text", "text": "Be brief."},
        ]
        return request.model_copy(update={"tools": tools, "system": system})


_NOTE = {"name": "note", "description": "Take a note.", "input_schema": {"type": "object"}}
_EXTRA = {"name": "extra", "description": "Unused.", "input_schema": {"type": "object"}}


async def test_user_breakpoints_on_tools_and_system_count(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Marks on a tool, a system block and an old message: the session adds one, never two."""
    server.queue(*[text_response(f"Answer {i}.") for i in range(4)])
    async with Session([lookup_backend(), _MarkingBackend()], model=model_factory()) as session:
        await session.chat(_marked_text("Reference: " + "r" * 6000))
        for i in range(3):
            await session.chat(f"Question {i}")  # the fake answers 400 past 4

    # Room for one: the session keeps its system breakpoint (tools and messages give way).
    for body in server.message_bodies:
        assert breakpoints(body) == ["tool:note", "system", "system", "message:0"]


_BLOCK = st.fixed_dictionaries(
    {"text": st.sampled_from(["a", "bb", "ccc"]), "marked": st.booleans()}
)
_MESSAGE = st.lists(_BLOCK, min_size=1, max_size=3)


def _request(
    history: list[Message], tools_marked: list[bool], system_marked: list[bool]
) -> MessagesRequest:
    tools = [
        {"name": f"t{i}", "input_schema": {"type": "object"}}
        | ({"cache_control": MARK} if m else {})
        for i, m in enumerate(tools_marked)
    ]
    system = [
        {"type": "text", "text": f"s{i}"} | ({"cache_control": MARK} if m else {})
        for i, m in enumerate(system_marked)
    ]
    return MessagesRequest._fast(
        model="m",
        max_tokens=10,
        messages=list(history),
        system=system or None,
        tools=tools or None,
        tool_choice=None,
        container=None,
        stream=None,
        betas=[],
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_MESSAGE, min_size=1, max_size=12),
    tools_marked=st.lists(st.booleans(), max_size=3),
    system_marked=st.lists(st.booleans(), max_size=3),
    messages=st.integers(0, 2),
)
def test_any_placement_of_user_marks_never_exceeds_four(
    steps: list[list[dict[str, Any]]],
    tools_marked: list[bool],
    system_marked: list[bool],
    messages: int,
) -> None:
    """User marks anywhere (at most 4 of them): every request of a growing history has at most 4."""
    user_marks = sum(tools_marked) + sum(system_marked)
    assume(user_marks <= 4)  # the user's own fifth would be the user's error
    marker = CacheMarker(PromptCaching(messages=messages))
    history: list[Message] = []
    for index, step in enumerate(steps):
        blocks = []
        for block in step:
            mark = block["marked"] and user_marks < 4
            user_marks += mark
            blocks.append(
                {"type": "text", "text": block["text"]} | ({"cache_control": MARK} if mark else {})
            )
        role = "user" if index % 2 == 0 else "assistant"
        history.append(Message.model_validate({"role": role, "content": blocks}))
        request = _request(history, tools_marked, system_marked)
        marker.mark(request)
        body = json.loads(request.body_json())
        assert count_marks(body) <= 4
        assert count_marks(body) >= min(user_marks, 4)
    assert all(b"cache_control" not in m.wire_json() for m in history if not _user_marked(m))


def _user_marked(message: Message) -> bool:
    return any(getattr(block, "__pydantic_extra__", None) for block in message.content)


async def test_five_user_breakpoints_are_the_api_s_clear_400_not_a_hang(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """The user's own five: the session adds none (it looped forever before) and the API refuses."""
    content = [{"type": "text", "text": f"part {i}", "cache_control": MARK} for i in range(5)]
    async with Session(lookup_backend(), model=model_factory(), system=SYSTEM) as session:
        with pytest.raises(BadRequestError, match="A maximum of 4 blocks with cache_control"):
            await session.chat(content)

    assert breakpoints(server.message_bodies[0]) == ["message:0"] * 5
