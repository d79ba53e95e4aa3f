"""Function tools: registration, schemas, validation, results, errors, context."""

from __future__ import annotations

import dataclasses
import threading
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from conjure_async import Session, ToolConflictError
from conjure_async.backends import NativeBackend, ToolCall, ToolContext, ToolResult, tool
from conjure_async.backends._native import NO_OUTPUT, NativeTool
from conjure_async.events import CreatedFile
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


class Item(BaseModel):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Deps:
    greeting: str
    seen: list[str] = dataclasses.field(default_factory=list)


async def call(
    backend: NativeBackend, name: str, args: dict[str, Any], deps: Any = None
) -> ToolResult:
    """Run one tool through a real session; return the result the model got."""
    model = ScriptedModel(
        [tool_use_response(tool_call(name, args, id="call_1")), text_response("done")]
    )
    async with Session(backend, model=model, deps=deps, session_id="sess-1") as session:
        reply = await session.chat("go")
    record = reply.tool_calls[0]
    return ToolResult(output=record.output, is_error=record.is_error)


# -- registration --------------------------------------------------------------


def test_decorator_without_parentheses_makes_a_tool() -> None:
    @tool
    async def ping() -> str:
        """Answer pong."""
        return "pong"

    assert isinstance(ping, NativeTool)
    assert (ping.name, ping.description) == ("ping", "Answer pong.")


def test_decorator_with_options_overrides_name_and_description() -> None:
    @tool(name="pong_tool", description="Says pong.")
    async def ping() -> str:
        return "pong"

    assert ping.definition.to_wire() == {
        "name": "pong_tool",
        "description": "Says pong.",
        "input_schema": {"additionalProperties": False, "properties": {}, "type": "object"},
    }


async def test_decorated_function_stays_directly_callable() -> None:
    @tool
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42


def test_sync_function_is_refused_with_a_clear_error() -> None:
    def blocking(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"not an async function.*run_in_thread=True"):
        tool(blocking)


def test_async_function_with_run_in_thread_is_refused() -> None:
    async def fine() -> None:
        return None

    with pytest.raises(TypeError, match="run_in_thread=True is for sync functions"):
        tool(run_in_thread=True)(fine)


def test_var_args_are_refused() -> None:
    async def spread(*args: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"\*args and \*\*kwargs"):
        tool(spread)


def test_invalid_tool_name_is_refused() -> None:
    async def fine() -> None:
        return None

    with pytest.raises(ValueError, match="tool name 'has space'"):
        tool(name="has space")(fine)


def test_backend_tool_decorator_registers_the_function() -> None:
    backend = NativeBackend()

    @backend.tool
    async def first() -> str:
        return "1"

    @backend.tool(name="second")
    async def other() -> str:
        return "2"

    assert [d.name for d in backend.tools()] == ["first", "second"]


def test_plain_async_function_is_accepted_by_the_backend() -> None:
    async def plain(x: int) -> int:
        return x

    assert [d.name for d in NativeBackend(plain).tools()] == ["plain"]


def test_duplicate_tool_names_in_one_backend_conflict() -> None:
    @tool
    async def same() -> None:
        return None

    @tool(name="same")
    async def other() -> None:
        return None

    with pytest.raises(ToolConflictError, match="'same' is defined twice"):
        NativeBackend(same, other)


def test_non_tool_item_is_refused() -> None:
    with pytest.raises(TypeError, match="not a native skill or tool: 42"):
        NativeBackend(42)


# -- schemas ---------------------------------------------------------------------


def test_schema_comes_from_type_hints_and_the_google_docstring() -> None:
    @tool
    async def order(
        ctx: ToolContext[Deps],
        customer: str,
        items: list[Item],
        speed: Literal["fast", "slow"] = "fast",
        note: str | None = None,
    ) -> str:
        """Place an order.

        Args:
            customer: The customer id,
                as shown on the invoice.
            items (list[Item]): What to order.
            speed: How to ship.

        Returns:
            The order id.
        """
        return "o-1"

    assert order.description == "Place an order."
    assert order.input_schema == {
        "$defs": {
            "Item": {
                "properties": {
                    "sku": {"title": "Sku", "type": "string"},
                    "qty": {"default": 1, "title": "Qty", "type": "integer"},
                },
                "required": ["sku"],
                "title": "Item",
                "type": "object",
            }
        },
        "additionalProperties": False,
        "properties": {
            "customer": {
                "description": "The customer id, as shown on the invoice.",
                "type": "string",
            },
            "items": {
                "description": "What to order.",
                "items": {"$ref": "#/$defs/Item"},
                "type": "array",
            },
            "speed": {
                "default": "fast",
                "description": "How to ship.",
                "enum": ["fast", "slow"],
                "type": "string",
            },
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["customer", "items"],
        "type": "object",
    }


def _descriptions(native: NativeTool[Any, Any]) -> dict[str, str | None]:
    properties = native.input_schema["properties"]
    return {name: prop.get("description") for name, prop in properties.items()}


def test_a_keyword_args_section_describes_keyword_parameters() -> None:
    """``Keyword Args:`` entries describe their parameters, as ``Args:`` entries do."""

    @tool
    async def search(query: str, *, limit: int = 10) -> None:
        """Search the catalogue.

        Args:
            query: What to find.

        Keyword Args:
            limit: At most this many hits.
        """

    assert search.description == "Search the catalogue."
    assert _descriptions(search) == {"query": "What to find.", "limit": "At most this many hits."}


def test_sections_after_args_end_it_and_describe_only_their_own() -> None:
    """``Other Parameters:``, ``Warns:``, ``Note:`` end ``Args:``; nothing leaks across."""

    @tool
    async def fetch(url: str, when: str | None = None, retries: int = 2) -> None:
        """Fetch a page.

        It is cached
        for an hour.

        Args:
            url: The address.
            when (str | None): A time (ISO 8601).

        Other Parameters:
            retries: How often to try again.

        Warns:
            UserWarning: When the cache is stale.

        Note:
            Slow on first use.
        """

    assert fetch.description == "Fetch a page.\n\nIt is cached\nfor an hour."
    assert _descriptions(fetch) == {
        "url": "The address.",
        "when": "A time (ISO 8601).",
        "retries": "How often to try again.",
    }


def test_a_docstring_the_parser_cannot_read_still_gives_the_description() -> None:
    """An ``Args:`` entry without a colon leaves the description whole and no parameter text."""

    @tool
    async def shout(text: str) -> str:
        """Shout it.

        Args:
            text the words
        """
        return text.upper()

    assert shout.description == "Shout it."
    assert _descriptions(shout) == {"text": None}


def test_field_metadata_in_annotated_wins_over_the_docstring() -> None:
    @tool
    async def page(n: Annotated[int, Field(ge=1, description="Page number.")]) -> None:
        """Fetch a page.

        Args:
            n: Ignored docstring text.
        """

    assert page.input_schema["properties"]["n"] == {
        "description": "Page number.",
        "minimum": 1,
        "type": "integer",
    }


def test_parameter_names_that_shadow_pydantic_attributes_work() -> None:
    @tool
    async def clash(json: str, model_config: int, schema: bool) -> None:
        return None

    assert list(clash.input_schema["properties"]) == ["json", "model_config", "schema"]


# -- validation --------------------------------------------------------------------


async def test_invalid_arguments_return_an_error_listing_every_problem() -> None:
    called = False

    @tool
    async def order(count: Annotated[int, Field(ge=1)], items: list[Item]) -> str:
        nonlocal called
        called = True
        return "ok"

    result = await call(NativeBackend(order), "order", {"count": 0, "items": [{"qty": 2}]})
    assert result.is_error
    assert result.output == (
        "Invalid arguments for order: count: Input should be greater than or equal to 1; "
        "items.0.sku: Field required"
    )
    assert not called


async def test_valid_arguments_are_coerced_to_the_annotated_types() -> None:
    received: list[Any] = []

    @tool
    async def order(items: list[Item]) -> str:
        received.extend(items)
        return "ok"

    result = await call(NativeBackend(order), "order", {"items": [{"sku": "a"}]})
    assert not result.is_error
    assert received == [Item(sku="a", qty=1)]


# -- results -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        (Item(sku="a", qty=2), '{"sku":"a","qty":2}'),
        ({"rows": [1, 2], "ok": True}, '{"rows":[1,2],"ok":true}'),
        ([Item(sku="b")], '[{"sku":"b","qty":1}]'),
        (None, NO_OUTPUT),
    ],
    ids=["str", "model", "dict", "list-of-models", "none"],
)
async def test_return_values_are_serialized_for_the_model(value: Any, expected: str) -> None:
    @tool
    async def produce() -> Any:
        return value

    result = await call(NativeBackend(produce), "produce", {})
    assert result == ToolResult(output=expected)


async def test_unserializable_return_value_is_an_error_result() -> None:
    @tool
    async def produce() -> Any:
        return object()

    result = await call(NativeBackend(produce), "produce", {})
    assert result.is_error
    assert result.text.startswith("The tool returned a value that cannot be serialized")


async def test_returned_tool_result_passes_through_with_its_files() -> None:
    created = CreatedFile(name="r.md", source="native", path="/tmp/r.md")

    @tool
    async def report() -> ToolResult:
        return ToolResult(output="written", files=(created,))

    model = ScriptedModel([tool_use_response(tool_call("report", {})), text_response("done")])
    async with Session(NativeBackend(report), model=model) as session:
        reply = await session.chat("go")
    assert reply.files == [created]
    assert session.files == [created]


# -- errors and cancellation ----------------------------------------------------------


async def test_exception_becomes_an_error_result_with_type_and_message() -> None:
    @tool
    async def broken() -> str:
        raise LookupError("no such customer: 42")

    result = await call(NativeBackend(broken), "broken", {})
    assert result == ToolResult(output="LookupError: no such customer: 42", is_error=True)


async def test_tracebacks_are_included_only_when_asked() -> None:
    @tool
    async def broken() -> str:
        raise LookupError("gone")

    result = await call(NativeBackend(broken, include_tracebacks=True), "broken", {})
    assert result.is_error
    assert result.text.startswith("LookupError: gone\n\nTraceback (most recent call last):")
    assert 'raise LookupError("gone")' in result.text


async def test_cancelling_the_chat_cancels_the_running_tool() -> None:
    started = anyio.Event()
    outcome: list[str] = []

    @tool
    async def wait_forever() -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        return "unreachable"

    model = ScriptedModel([tool_use_response(tool_call("wait_forever", {}, id="call_1"))])
    async with Session(NativeBackend(wait_forever), model=model) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "go")
            await started.wait()
            tg.cancel_scope.cancel()
        history = session.history
    assert outcome == ["cancelled"]
    last = history[-1].content
    assert isinstance(last, list)
    assert last[0].model_dump(exclude_none=True) == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "Tool call cancelled before it finished.",
        "is_error": True,
    }


async def test_timeout_cancels_the_tool_and_reports_timed_out() -> None:
    outcome: list[str] = []

    @tool
    async def slow() -> str:
        try:
            await anyio.sleep_forever()
        finally:
            outcome.append("stopped")
        return "unreachable"

    model = ScriptedModel([tool_use_response(tool_call("slow", {})), text_response("done")])
    async with Session(NativeBackend(slow), model=model, tool_timeout=0.05) as session:
        reply = await session.chat("go")
    assert outcome == ["stopped"]
    assert reply.tool_calls[0].is_error
    assert reply.tool_calls[0].output == "[timed out after 0.05s; the tool was stopped]"


# -- context and deps -------------------------------------------------------------------


async def test_context_carries_deps_and_call_identity() -> None:
    seen: list[ToolContext[Deps]] = []

    @tool
    async def greet(ctx: ToolContext[Deps], name: str) -> str:
        seen.append(ctx)
        return f"{ctx.deps.greeting}, {name}"

    deps = Deps(greeting="Hello")
    result = await call(NativeBackend(greet), "greet", {"name": "Ada"}, deps=deps)
    assert result == ToolResult(output="Hello, Ada")
    (ctx,) = seen
    assert (ctx.session_id, ctx.call_id, ctx.tool_name, ctx.deps) == (
        "sess-1",
        "call_1",
        "greet",
        deps,
    )


async def test_context_parameter_may_have_any_name_and_position() -> None:
    @tool
    async def greet(name: str, context: ToolContext[Deps]) -> str:
        return f"{context.deps.greeting}, {name}"

    assert "context" not in greet.input_schema["properties"]
    result = await call(NativeBackend(greet), "greet", {"name": "Ada"}, deps=Deps("Hi"))
    assert result == ToolResult(output="Hi, Ada")


async def test_sync_function_with_run_in_thread_runs_in_a_worker_thread() -> None:
    @tool(run_in_thread=True)
    def where(ctx: ToolContext[Deps]) -> str:
        ctx.deps.seen.append(threading.current_thread().name)
        return "ok"

    deps = Deps(greeting="")
    result = await call(NativeBackend(where), "where", {}, deps=deps)
    assert result == ToolResult(output="ok")
    assert deps.seen != [threading.main_thread().name]
    assert len(deps.seen) == 1


async def test_unknown_tool_name_on_the_backend_is_an_error_result() -> None:
    backend = NativeBackend()
    ctx: ToolContext[None] = ToolContext(
        session_id="s", call_id="c", tool_name="nope", logger=_logger(), deps=None
    )
    events = [event async for event in backend.run_tool(ToolCall("c", "nope", {}), ctx)]
    assert events == [ToolResult(output="NativeBackend has no tool 'nope'", is_error=True)]


def _logger() -> Any:
    from conjure_async._logging import get_logger

    return get_logger()
