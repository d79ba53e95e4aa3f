"""The compiled schema check agrees with the explaining checker on any schema and value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conjure_async._schema import compile_schema, schema_errors

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.sampled_from("abc"),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
    ),
    max_leaves=8,
)
types = st.sampled_from(
    ["string", "integer", "number", "boolean", "object", "array", "null", "odd"]
)
schemas = st.recursive(
    st.fixed_dictionaries({}, optional={"type": types | st.lists(types, max_size=2)}),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "type": types,
            "properties": st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
            "required": st.lists(st.sampled_from("abcd"), max_size=2),
            "additionalProperties": st.booleans(),
            "items": inner,
            "enum": st.lists(json_values, max_size=3),
            "minItems": st.integers(0, 3),
            "maxItems": st.integers(0, 3),
        },
    ),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(schema=schemas, value=json_values)
def test_compiled_check_agrees_with_schema_errors(schema: dict[str, Any], value: Any) -> None:
    """compile_schema(s)(v) is exactly `not schema_errors(v, s)`."""
    assert compile_schema(schema)(value) == (not schema_errors(value, schema))


def test_unusual_schemas_fall_back_to_the_explaining_checker() -> None:
    """A schema of an unexpected shape is checked by schema_errors itself."""
    schema: dict[str, Any] = {"type": "object", "required": "ab"}
    assert compile_schema(schema)({"a": 1, "b": 2})
    assert not compile_schema(schema)({"a": 1})
    assert compile_schema({"type": "array", "minItems": 2.5})([1, 2, 3])
