"""``gen_ai.input.messages`` built incrementally: the same bytes as a whole dump, redacted.

The property compares :class:`InputMessages` with the from-scratch conversion
over appends, replaced tails, marked copies, requests cut at a compaction
block, restored histories and a changed redactor; the session tests run the
real SDK's in-memory exporter, the Anthropic model over real HTTP against the
fake server on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conjure_async import Compaction, Session
from conjure_async import _telemetry_content as content
from conjure_async._redact import DEFAULT_REDACTOR, REDACTED, Redactor
from conjure_async._telemetry_content import InputMessages, content_attributes
from conjure_async.backends import NativeBackend, tool
from conjure_async.messages import Message, MessagesRequest
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import (
    FakeAnthropicServer,
    ScriptedModel,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.anthropic.constants import FAST
from tests.test_telemetry_content import GATEWAY_TOKEN, STRANGER, Traced

GATEWAY_TAKEN = "tok3n"
"""A model key shaped like nothing (found only because the redactor knows it)."""


class Shouting(Redactor):
    """A redactor of its own: its ``text`` may do anything, so nothing is split for it."""

    def text(self, value: str) -> str:
        """Upper-case every ``secret`` too."""
        return super().text(value).replace("secret", "SECRET")


REDACTORS = [
    DEFAULT_REDACTOR,
    Redactor(GATEWAY_TAKEN),
    Redactor("a, b"),  # a secret holding the list's separator: dumped whole
    Redactor("]x"),
    Shouting(GATEWAY_TAKEN),
]

texts = st.lists(
    st.sampled_from(
        [
            *("a", " ", ",", "[", "]", '"', "{", "}", "é", "\\", "\n", "x", "b", "secret"),
            *("tok3n", "sk-ant-", "sk-ant-api03-AbCd_efgh", "a, b", "]x"),
        ]
    ),
    max_size=8,
).map("".join)
inputs = st.dictionaries(
    st.sampled_from(["b", "a", "q"]), st.one_of(texts, st.integers(), st.booleans()), max_size=3
)
blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t or "."}, texts),
    st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "s"}, texts),
    st.builds(
        lambda i, a: {"type": "tool_use", "id": f"toolu_{i}", "name": "echo", "input": a},
        st.integers(0, 9),
        inputs,
    ),
    st.builds(
        lambda i, t: {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": t},
        st.integers(0, 9),
        st.one_of(texts, st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts))),
    ),
    st.builds(
        lambda c: {"type": "compaction", "content": c},
        st.one_of(st.none(), texts),
    ),
    st.builds(lambda d: {"type": "container_upload", "file_id": d}, texts),
)
messages = st.builds(
    lambda role, body: Message(role=role, content=body),
    st.sampled_from(["user", "assistant"]),
    st.one_of(texts, st.lists(blocks, min_size=1, max_size=3)),
)


def whole(history: list[Message], redactor: Redactor) -> str:
    """The attribute as built from scratch (no fragments kept)."""
    request = MessagesRequest(model="m", max_tokens=1, messages=history)
    return content_attributes(request, redactor)["gen_ai.input.messages"]


def marked(message: Message) -> Message:
    """A copy of ``message`` with a breakpoint on its last block, as prompt caching sends it."""
    wire = message.to_wire()
    body = wire["content"]
    if isinstance(body, str):
        body = [{"type": "text", "text": body}]
    body[-1] = {**body[-1], "cache_control": {"type": "ephemeral"}}
    return Message.model_validate({**wire, "content": body})


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_incremental_value_is_byte_identical_to_a_whole_dump(data: st.DataObject) -> None:
    """Over appends, replaced tails, marked copies, cuts, restores and redactor changes."""
    joined = InputMessages()
    redactor = data.draw(st.sampled_from(REDACTORS), label="redactor")
    history: list[Message] = []
    for _ in range(data.draw(st.integers(1, 12), label="requests")):
        step = data.draw(
            st.sampled_from(["append", "append", "replace", "cut", "restore", "redactor"]),
            label="step",
        )
        if step == "append" or not history:
            history = [*history, *data.draw(st.lists(messages, min_size=1, max_size=3))]
        elif step == "replace":  # a continuation merged into one of the last few
            at = len(history) - 1 - data.draw(st.integers(0, min(3, len(history) - 1)))
            history = [*history[:at], data.draw(messages), *history[at + 1 :]]
        elif step == "cut":  # a request from the last compaction block on
            at = data.draw(st.integers(0, len(history) - 1))
            history = history[at:]
        elif step == "restore":  # the same conversation, loaded again: new objects
            history = [Message.model_validate(m.to_wire()) for m in history]
        else:
            redactor = data.draw(st.sampled_from(REDACTORS))
        sent = list(history)
        for back in range(1, data.draw(st.integers(0, 2)) + 1):  # prompt caching's copies
            if back <= len(sent):
                sent[-back] = marked(sent[-back])
        assert joined.dump(sent, redactor) == whole(sent, redactor)
        assert len(joined) in (0, len(sent))  # nothing kept of messages that left


def test_fragments_of_unchanged_messages_are_reused() -> None:
    """A grown history converts only its new messages; a cut keeps the fragments after the cut."""
    joined = InputMessages()
    first = [Message(role="user", content=f"m{i}") for i in range(10)]
    joined.dump(first, DEFAULT_REDACTOR)
    kept = list(joined._fragments)
    joined.dump([*first, Message(role="assistant", content="new")], DEFAULT_REDACTOR)
    assert all(a is b for a, b in zip(kept, joined._fragments[:10], strict=True))
    joined.dump(first[6:], DEFAULT_REDACTOR)
    assert len(joined) == 4
    assert all(a is b for a, b in zip(kept[6:], joined._fragments, strict=True))


def test_a_replaced_message_keeps_the_fragments_after_it() -> None:
    """A marked copy going back to its original reconverts that one message only."""
    joined = InputMessages()
    history = [Message(role="user", content=f"m{i}") for i in range(10)]
    joined.dump([*history[:8], marked(history[8]), history[9]], DEFAULT_REDACTOR)
    last = joined._fragments[9]
    extra = Message(role="assistant", content="m10")
    value = joined.dump([*history, extra], DEFAULT_REDACTOR)
    assert joined._fragments[9] is last
    assert value == whole([*history, extra], DEFAULT_REDACTOR)


def test_an_empty_history_is_an_empty_list() -> None:
    """No message gives ``[]``, as json.dumps does."""
    assert InputMessages().dump([], DEFAULT_REDACTOR) == "[]" == whole([], DEFAULT_REDACTOR)


@tool
async def echo(text: str) -> str:
    """Repeat a text.

    Args:
        text: The text to repeat.
    """
    return text


def _echoes(count: int, text: str) -> list[Any]:
    calls = [tool_use_response(tool_call("echo", {"text": text}, id=f"c{i}")) for i in range(count)]
    return [*calls, text_response("done")]


@pytest.mark.anyio
async def test_a_conversation_converts_each_message_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 30 model calls each message is converted about once, not once per later call."""
    converted: list[Message] = []
    convert = content._input_message

    def counting(message: Message) -> dict[str, Any]:
        converted.append(message)
        return convert(message)

    monkeypatch.setattr(content, "_input_message", counting)
    traced = Traced()
    model = ScriptedModel(_echoes(30, "hi"))
    async with Session(
        NativeBackend(echo),
        model=model,
        tracer_provider=traced.provider,
        capture_content=True,
        max_iterations=40,
    ) as session:
        await session.chat("go")
        history = session.history
    chats = traced.chats()
    assert len(chats) == 31
    assert len(json.loads(chats[-1]["gen_ai.input.messages"])) == len(history) - 1
    # The whole history each call would be 31 * 32 = 992 conversions.
    assert len(converted) <= 2 * len(history), len(converted)


@pytest.mark.anyio
async def test_a_secret_in_an_old_message_never_reaches_a_later_span() -> None:
    """The model's key and a key-shaped string in the first prompt are redacted on every span."""
    traced = Traced()
    replies = [
        {
            "content": [
                {"type": "tool_use", "id": f"call_{i}", "name": "echo", "input": {"text": "x"}}
            ],
            "stop_reason": "tool_use",
        }
        for i in range(4)
    ]
    replies.append({"content": [{"type": "text", "text": "done"}]})
    async with (
        FakeAnthropicServer(replies, api_key=GATEWAY_TOKEN) as fake,
        AnthropicModel(api_key=GATEWAY_TOKEN, base_url=fake.base_url, retry=FAST) as model,
        Session(
            NativeBackend(echo), model=model, tracer_provider=traced.provider, capture_content=True
        ) as session,
    ):
        await session.chat(f"token {GATEWAY_TOKEN} and key {STRANGER}")
    chats = traced.chats()
    assert len(chats) == 5
    for chat in chats:
        captured = chat["gen_ai.input.messages"]
        assert GATEWAY_TOKEN not in captured
        assert STRANGER not in captured
        assert "sk-ant-api03" not in captured
        assert captured.count(REDACTED) == 2, captured
    assert GATEWAY_TOKEN not in traced.everything()


@pytest.mark.anyio
async def test_compacted_requests_carry_what_was_sent() -> None:
    """With compaction cutting the requests, each span holds exactly the messages sent."""
    traced = Traced()
    calls, size = 14, 20_000

    issued: list[int] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        del body
        if len(issued) >= calls:
            return {"content": [{"type": "text", "text": "done"}]}
        issued.append(len(issued))
        call = {"type": "tool_use", "id": f"toolu_{len(issued)}", "name": "echo"}
        return {"content": [{**call, "input": {"text": "y" * size}}], "stop_reason": "tool_use"}

    async with (
        FakeAnthropicServer(answer, accounting=True) as server,
        AnthropicModel(api_key="kk-7", base_url=server.base_url, stream=False, retry=FAST) as model,
        Session(
            NativeBackend(echo),
            model=model,
            tracer_provider=traced.provider,
            capture_content=True,
            compaction=Compaction(trigger=50_000),
            max_iterations=calls + 5,
        ) as session,
    ):
        await session.chat("go")
        bodies = server.message_bodies
    chats = traced.chats()
    assert len(chats) == len(bodies)
    starts = {json.dumps(body["messages"][0])[:60] for body in bodies}
    assert len(starts) > 1, "no request was cut at a compaction block"
    for chat, body in zip(chats, bodies, strict=True):
        sent = [Message.model_validate(m) for m in body["messages"]]
        assert json.loads(chat["gen_ai.input.messages"]) == json.loads(
            whole(sent, DEFAULT_REDACTOR)
        )
