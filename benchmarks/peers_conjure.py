"""conjure_async's side of the peer benchmarks (needs only conjure_async itself)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx2

from benchmarks.peers_common import (
    FINAL_TEXT,
    MODEL_NAME,
    PROMPT,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_SCHEMA,
    Stamps,
    anthropic_message,
    call_id,
)
from benchmarks.peers_http import mock_anthropic_model, mock_anthropic_transport
from conjure_async import Session
from conjure_async.backends import Backend, ToolCall, ToolContext, ToolEvent, ToolResult
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolDefinition
from conjure_async.testing import text_response, tool_call, tool_use_response

TOOLS = (ToolDefinition(name=TOOL_NAME, description=TOOL_DESCRIPTION, input_schema=TOOL_SCHEMA),)


class NoopBackend(Backend):
    """A backend serving the one trivial tool: ``noop(i: int) -> "ok"``.

    Its definitions are built once, as an application's backends would
    (``NativeBackend`` caches them per function).
    """

    kind = "bench"

    def tools(self) -> Sequence[ToolDefinition]:
        return TOOLS

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        yield ToolResult(output="ok")


def _response(i: int, n: int) -> MessagesResponse:
    if i < n:
        return tool_use_response(tool_call(TOOL_NAME, {"i": i}, id=call_id(i)))
    return text_response(FINAL_TEXT)


class InstantModel:
    """The api callback of one conversation: answers at once, stamps each call."""

    model_name = MODEL_NAME

    def __init__(self, n: int, stamps: Stamps) -> None:
        self.n = n
        self.stamps = stamps
        self.calls = 0

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        self.stamps()
        i = self.calls
        self.calls += 1
        return _response(i, self.n)


async def conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call chat through a Session, in process."""
    model = InstantModel(n, stamps)
    async with Session(NoopBackend(), model=model, max_iterations=n + 1) as session:
        reply = await session.chat(PROMPT)
    if reply.text != FINAL_TEXT or model.calls != n + 1:
        raise RuntimeError(f"conjure_async: unexpected end ({model.calls} calls, {reply.text!r})")


async def http_conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call chat through ``AnthropicModel`` over an ``httpx2.MockTransport``."""

    transport = mock_anthropic_transport(n, stamps)
    async with httpx2.AsyncClient(transport=transport) as client:
        model = mock_anthropic_model(client, MODEL_NAME)
        async with Session(NoopBackend(), model=model, max_iterations=n + 1) as session:
            reply = await session.chat(PROMPT)
    if reply.text != FINAL_TEXT or transport.calls != n + 1:
        raise RuntimeError(f"conjure_async http: unexpected end ({transport.calls} calls)")


class SleepyModel:
    """A shared api callback that sleeps ``delay`` per call; the step comes from the history.

    With ``fresh`` each answer is validated from its dict at each call (an
    API client's parsing, paid per call); otherwise the answers are built
    once and shared, so the model costs only its sleep and what is measured
    is the runtime (as in the per-call benchmark; ADR 0014).
    """

    model_name = MODEL_NAME

    def __init__(self, calls: int, delay: float, *, fresh: bool = True) -> None:
        self.calls = calls
        self.delay = delay
        self.fresh = fresh
        self.responses = (
            []
            if fresh
            else [
                MessagesResponse.model_validate(anthropic_message(step, calls))
                for step in range(calls + 1)
            ]
        )

    async def __call__(self, request: MessagesRequest) -> MessagesResponse:
        await anyio.sleep(self.delay)
        step = (len(request.messages) - 1) // 2
        if self.fresh:
            return MessagesResponse.model_validate(anthropic_message(step, self.calls))
        return self.responses[step]


async def concurrent(sessions: int, calls: int, delay: float, *, fresh: bool = True) -> None:
    """``sessions`` concurrent sessions, each one chat of ``calls`` tool calls."""
    model = SleepyModel(calls, delay, fresh=fresh)
    failures: list[str] = []

    async def one() -> None:
        async with Session(NoopBackend(), model=model, max_iterations=calls + 1) as session:
            reply = await session.chat(PROMPT)
        if reply.text != FINAL_TEXT or len(reply.tool_calls) != calls:
            failures.append(reply.text)

    async with anyio.create_task_group() as tg:
        for _ in range(sessions):
            tg.start_soon(one)
    if failures:
        raise RuntimeError(f"conjure_async: {len(failures)} sessions ended unexpectedly")


@contextlib.asynccontextmanager
async def idle_sessions(count: int) -> AsyncIterator[list[Session[None]]]:
    """``count`` open sessions that have not chatted yet."""
    model = SleepyModel(1, 0.0)
    async with contextlib.AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(Session(NoopBackend(), model=model))
            for _ in range(count)
        ]
        yield opened
