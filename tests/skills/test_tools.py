"""skill_tool_definitions: the view, bash_tool, create_file and str_replace tools."""

from __future__ import annotations

import pytest

from conjure_async.messages import ToolDefinition
from conjure_async.skills import SKILL_TOOL_NAMES, skill_tool_definitions


def by_name() -> dict[str, ToolDefinition]:
    return {tool.name: tool for tool in skill_tool_definitions()}


def test_four_tools_in_a_fixed_order() -> None:
    assert SKILL_TOOL_NAMES == ("view", "bash_tool", "create_file", "str_replace")
    assert [t.name for t in skill_tool_definitions()] == list(SKILL_TOOL_NAMES)
    assert all(isinstance(t, ToolDefinition) and t.description for t in skill_tool_definitions())


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("view", ["path"]),
        ("bash_tool", ["command", "description"]),
        ("create_file", ["description", "path", "file_text"]),
        ("str_replace", ["description", "path", "old_str", "new_str"]),
    ],
)
def test_required_arguments(name: str, required: list[str]) -> None:
    schema = by_name()[name].input_schema
    assert schema["type"] == "object"
    assert schema["required"] == required
    assert set(required) <= set(schema["properties"])


@pytest.mark.parametrize("name", SKILL_TOOL_NAMES)
def test_schemas_refuse_additional_properties(name: str) -> None:
    assert by_name()[name].input_schema["additionalProperties"] is False


@pytest.mark.parametrize("name", SKILL_TOOL_NAMES)
def test_every_property_is_a_described_string_or_the_view_range(name: str) -> None:
    for prop, spec in by_name()[name].input_schema["properties"].items():
        assert spec["description"], prop
        assert spec["type"] == ("array" if prop == "view_range" else "string")


def test_view_range_is_an_optional_pair_of_integers() -> None:
    schema = by_name()["view"].input_schema
    assert schema["properties"]["view_range"] == {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 2,
        "maxItems": 2,
        "description": schema["properties"]["view_range"]["description"],
    }
    assert "view_range" not in schema["required"]
    assert "-1" in schema["properties"]["view_range"]["description"]


def test_str_replace_accepts_an_empty_new_str_but_not_an_empty_old_str() -> None:
    properties = by_name()["str_replace"].input_schema["properties"]
    assert "minLength" not in properties["new_str"]
    assert properties["old_str"]["minLength"] == 1


def test_only_keeps_the_named_tools_in_the_fixed_order() -> None:
    tools = skill_tool_definitions(only=["str_replace", "view"])
    assert [t.name for t in tools] == ["view", "str_replace"]


def test_only_accepts_a_single_name() -> None:
    assert [t.name for t in skill_tool_definitions(only="bash_tool")] == ["bash_tool"]


def test_exclude_drops_the_named_tools() -> None:
    tools = skill_tool_definitions(exclude={"bash_tool"})
    assert [t.name for t in tools] == ["view", "create_file", "str_replace"]


def test_only_and_exclude_combine() -> None:
    tools = skill_tool_definitions(only=["view", "bash_tool"], exclude=["view"])
    assert [t.name for t in tools] == ["bash_tool"]


@pytest.mark.parametrize("argument", ["only", "exclude"])
def test_unknown_tool_names_are_a_value_error(argument: str) -> None:
    with pytest.raises(ValueError, match=f"{argument}: unknown skill tool name.*'edit'"):
        skill_tool_definitions(**{argument: ["view", "edit"]})


def test_each_call_returns_independent_schemas() -> None:
    first = skill_tool_definitions()
    first[0].input_schema["properties"].clear()
    assert skill_tool_definitions()[0].input_schema["properties"]


def test_definitions_serialise_to_the_wire_shape() -> None:
    wire = skill_tool_definitions(only="bash_tool")[0].to_wire()
    assert set(wire) == {"name", "description", "input_schema"}
    assert wire["name"] == "bash_tool"
