"""A NativeBackend built from the same function again reuses what the first one derived."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from conjure_async import Session
from conjure_async.backends import NativeBackend, ToolContext, tool
from conjure_async.backends import _native_tool as native_tool_module
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


async def forecast(city: str, days: int = 3) -> str:
    """Forecast for a city.

    Args:
        city: Where.
        days: How many days.
    """
    return f"{city}:{days}"


def test_the_same_function_is_prepared_once() -> None:
    """Two backends from one function share its arguments model and definition."""
    first = NativeBackend(forecast)
    second = NativeBackend(forecast)
    (one,) = first._entries.values()
    (two,) = second._entries.values()
    assert one is not two
    assert one.arguments_model is two.arguments_model  # type: ignore[union-attr]
    assert first.tools()[0] is second.tools()[0]


def test_name_and_description_overrides_get_their_own_tool() -> None:
    """An override is part of the key: the default tool stays as it was."""
    plain = tool(forecast)
    renamed = tool(name="weather", description="The weather.")(forecast)
    assert (plain.name, plain.description) == ("forecast", "Forecast for a city.")
    assert (renamed.name, renamed.description) == ("weather", "The weather.")
    assert tool(forecast).definition is plain.definition
    assert renamed.definition is not plain.definition


def test_another_function_of_the_same_name_is_prepared_on_its_own() -> None:
    """The cache is per function object, not per name: a redefinition gets its own schema."""
    namespace: dict[str, Any] = {}
    exec("async def forecast(city: str) -> str:\n    return city\n", namespace)
    assert "days" in tool(forecast).input_schema["properties"]
    assert "days" not in tool(namespace["forecast"]).input_schema["properties"]


def test_a_function_that_goes_away_takes_its_cache_entry_with_it() -> None:
    """Functions made per request are not kept alive by the cache."""

    def make(suffix: str) -> Any:
        async def helper(x: int, ctx: ToolContext[Any]) -> str:
            return f"{x}{suffix}"

        return helper

    fn = make("!")
    backend = NativeBackend(fn)
    assert fn in native_tool_module._PLANS
    alive = weakref.ref(fn)
    del fn, backend
    gc.collect()
    assert alive() is None  # the cached plan did not keep the function alive
    assert all(ref() is not None for ref in native_tool_module._PLANS.data)  # its entry is gone


async def test_backends_built_per_session_from_one_function_all_work() -> None:
    """Sessions each with a fresh NativeBackend of the same function run the tool correctly."""
    for city in ("Oslo", "Lima"):
        model = ScriptedModel(
            [tool_use_response(tool_call("forecast", {"city": city})), text_response("k")]
        )
        async with Session(NativeBackend(forecast), model=model) as session:
            reply = await session.chat("go")
        assert reply.tool_calls[0].output == f"{city}:3"
