"""pydantic-ai's side: ``Agent`` + ``FunctionModel`` + one ``@agent.tool_plain``.

The model function returns usage with each response, so ``FunctionModel``
does not estimate tokens over the whole history on each call (a cost of the
test double, not of the agent loop); that favours pydantic-ai.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage, UsageLimits

from benchmarks.peers_common import FINAL_TEXT, PROMPT, TOOL_NAME, USAGE, Stamps, call_id


def _response(i: int, n: int) -> ModelResponse:
    usage = RequestUsage(**USAGE)
    if i < n:
        part = ToolCallPart(TOOL_NAME, {"i": i}, tool_call_id=call_id(i))
        return ModelResponse(parts=[part], usage=usage)
    return ModelResponse(parts=[TextPart(FINAL_TEXT)], usage=usage)


def _agent(function: Any) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(FunctionModel(function))

    @agent.tool_plain(name=TOOL_NAME)
    async def noop(i: int) -> str:
        """Do nothing and return ok."""
        return "ok"

    return agent


async def conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call ``agent.run``."""
    calls = 0

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        stamps()
        i = calls
        calls += 1
        return _response(i, n)

    result = await _agent(model).run(PROMPT, usage_limits=UsageLimits(request_limit=None))
    if result.output != FINAL_TEXT or calls != n + 1:
        raise RuntimeError(f"pydantic-ai: unexpected end ({calls} calls, {result.output!r})")


async def concurrent(sessions: int, calls: int, delay: float) -> None:
    """``sessions`` concurrent ``agent.run`` of ``calls`` tool calls on one shared agent."""

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await anyio.sleep(delay)
        step = sum(isinstance(m, ModelResponse) for m in messages)
        return _response(step, calls)

    agent = _agent(model)
    failures: list[str] = []

    async def one() -> None:
        result = await agent.run(PROMPT, usage_limits=UsageLimits(request_limit=None))
        if result.output != FINAL_TEXT:
            failures.append(result.output)

    async with anyio.create_task_group() as tg:
        for _ in range(sessions):
            tg.start_soon(one)
    if failures:
        raise RuntimeError(f"pydantic-ai: {len(failures)} runs ended unexpectedly")
