"""Sessions built per conversation share what does not belong to one session, and only that."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conjure_async import Session
from conjure_async._engine import TurnEngine
from conjure_async._model_call import tool_wire
from conjure_async._turn import ToolSpec
from conjure_async.backends import Backend, ToolCall, ToolContext, ToolResult
from conjure_async.messages import ToolDefinition
from conjure_async.testing import ScriptedModel, text_response

pytestmark = pytest.mark.anyio

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0.5, "default": None}},
    "required": ["n"],
}


class Fixed(Backend):
    """Offers the same definition objects to every session."""

    kind = "fixed"

    def __init__(self, *definitions: ToolDefinition) -> None:
        self.definitions = definitions

    def tools(self) -> tuple[ToolDefinition, ...]:
        return self.definitions

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> Any:
        yield ToolResult(output="ok")


@pytest.mark.parametrize(
    "definition",
    [
        ToolDefinition(name="plain", description="d", input_schema=SCHEMA),
        ToolDefinition(name="tuple", input_schema={"enum": (1, 2)}),
        ToolDefinition(name="infinite", input_schema={"maximum": math.inf}),
        ToolDefinition(name="extra", input_schema=SCHEMA, cache_control={"type": "ephemeral"}),
    ],
)
def test_tool_wire_is_exactly_to_wire(definition: ToolDefinition) -> None:
    """Whatever the schema holds, the wire dict equals the definition's to_wire()."""
    assert tool_wire(definition) == definition.to_wire()


async def test_sessions_share_a_plain_schema_instead_of_copying_it() -> None:
    """Two sessions on one definition send its schema object itself; the tool list is a copy."""
    definition = ToolDefinition(name="plain", input_schema=SCHEMA)
    tools = []
    for _ in range(2):
        session = Session(Fixed(definition), model=ScriptedModel([text_response("k")]))
        async with session:
            tools.append(session._models.tool_dicts[0])
            assert session.tools == [definition.to_wire()]
    assert tools[0]["input_schema"] is tools[1]["input_schema"] is definition.input_schema


async def test_sessions_without_providers_share_their_telemetry() -> None:
    """Sessions on the global providers share one telemetry; a provider or capture gets its own."""
    from opentelemetry.sdk.trace import TracerProvider

    a = Session(model=ScriptedModel([]))
    b = Session(model=ScriptedModel([]))
    c = Session(model=ScriptedModel([]), tracer_provider=TracerProvider())
    d = Session(model=ScriptedModel([]), capture_content=True)
    e = Session(model=ScriptedModel([]), capture_content=True)
    assert a._telemetry is b._telemetry
    assert c._telemetry is not a._telemetry
    # Capturing content, a telemetry keeps its session model's redactor: never shared.
    assert d._telemetry is not a._telemetry
    assert d._telemetry is not e._telemetry
    assert d._telemetry.capture_content


def test_engines_share_the_compiled_check_of_one_schema() -> None:
    """One compiled check per distinct schema (equal content), used by every engine."""
    first = TurnEngine([ToolSpec("t", "k", dict(SCHEMA))])
    second = TurnEngine([ToolSpec("t", "k", dict(SCHEMA))])
    other = TurnEngine([ToolSpec("t", "k", {"type": "object", "required": ["m"]})])
    checks = [e._check(e._specs["t"]) for e in (first, second, other)]
    assert checks[0] is checks[1]
    assert checks[2] is not checks[0]
    assert checks[0]({"n": 1})
    assert not checks[0]({})
    assert checks[2]({"m": 1})
    assert not checks[2]({"n": 1})
