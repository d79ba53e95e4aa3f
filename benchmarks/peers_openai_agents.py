"""openai-agents' side: ``Runner.run`` with a scripted ``Model`` and one ``@function_tool``.

Tracing is disabled (conjure_async's default tracer is a no-op too).
"""

from __future__ import annotations

import json
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from benchmarks.peers_common import FINAL_TEXT, PROMPT, TOOL_NAME, USAGE, Stamps, call_id

set_tracing_disabled(True)


class ScriptedModel(Model):
    """Answers ``n`` function calls, then a text message; stamps each call."""

    def __init__(self, n: int, stamps: Stamps) -> None:
        self.n = n
        self.stamps = stamps
        self.calls = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.stamps()
        i = self.calls
        self.calls += 1
        output: list[Any]
        if i < self.n:
            output = [
                ResponseFunctionToolCall(
                    id=f"fc_{i:06d}",
                    call_id=call_id(i),
                    type="function_call",
                    name=TOOL_NAME,
                    arguments=json.dumps({"i": i}),
                )
            ]
        else:
            text = ResponseOutputText(
                text=FINAL_TEXT, type="output_text", annotations=[], logprobs=[]
            )
            output = [
                ResponseOutputMessage(
                    id="msg_final",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[text],
                )
            ]
        usage = Usage(requests=1, total_tokens=sum(USAGE.values()), **USAGE)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the benchmark does not stream")


@function_tool(name_override=TOOL_NAME)
async def noop(i: int) -> str:
    """Do nothing and return ok."""
    return "ok"


async def conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call ``Runner.run``."""
    model = ScriptedModel(n, stamps)
    agent: Agent[Any] = Agent(name="bench", model=model, tools=[noop])
    result = await Runner.run(agent, PROMPT, max_turns=n + 1)
    if result.final_output != FINAL_TEXT or model.calls != n + 1:
        raise RuntimeError(f"openai-agents: unexpected end ({model.calls} calls)")
