"""A small JSON Schema checker for tool arguments from the model.

It covers what tool schemas use in practice (``type``, ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``,
``minItems``/``maxItems``) and ignores keywords it does not know, so it never
rejects valid input; backends may validate more strictly (the native backend
validates with pydantic).

:func:`schema_errors` explains what is wrong; :func:`compile_schema` builds,
once per tool, a predicate that answers "is it valid?" without building any
message, so the loop pays for the explanation only when input is invalid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Check", "compile_schema", "schema_errors"]

Check = Callable[[Any], bool]
"""``check(value) -> bool``: whether ``schema_errors(value, schema)`` would be empty."""

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _type_ok(value: Any, expected: str) -> bool:
    kinds = _TYPES.get(expected)
    if kinds is None:
        return True
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, kinds)


def schema_errors(value: Any, schema: dict[str, Any], where: str = "input") -> list[str]:
    """Return human-readable problems of ``value`` against ``schema`` (empty if valid)."""
    errors: list[str] = []
    expected = schema.get("type")
    if isinstance(expected, str) and not _type_ok(value, expected):
        return [f"{where} must be of type {expected}, got {type(value).__name__}"]
    if isinstance(expected, list) and not any(_type_ok(value, t) for t in expected):
        return [f"{where} must be one of types {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {schema['enum']!r}")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        errors.extend(
            f"{where}: missing required field {name!r}"
            for name in schema.get("required", [])
            if name not in value
        )
        if schema.get("additionalProperties") is False:
            errors.extend(f"{where}: unexpected field {key!r}" for key in value if key not in props)
        for key, item in value.items():
            sub = props.get(key)
            if isinstance(sub, dict):
                errors.extend(schema_errors(item, sub, f"{where}.{key}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{where} needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where} takes at most {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                errors.extend(schema_errors(item, items, f"{where}[{index}]"))
    return errors


def compile_schema(schema: dict[str, Any]) -> Check:
    """Return a predicate equivalent to ``not schema_errors(value, schema)``, built once.

    A schema of a shape the compiler does not expect (``properties`` that is
    not an object, a non-numeric ``minItems``...) falls back to calling
    :func:`schema_errors`, so the two never disagree.
    """
    try:
        return _compile(schema)
    except _UnusualSchemaError:
        return lambda value: not schema_errors(value, schema)


class _UnusualSchemaError(Exception):
    """The schema has a shape the compiler leaves to :func:`schema_errors`."""


def _always(value: Any) -> bool:
    del value
    return True


def _compile(schema: dict[str, Any]) -> Check:
    checks: list[Check] = []
    expected = schema.get("type")
    if isinstance(expected, str):
        kinds = _TYPES.get(expected)
        if kinds is not None:
            if expected in ("integer", "number"):
                checks.append(lambda v: isinstance(v, kinds) and not isinstance(v, bool))
            else:
                checks.append(lambda v: isinstance(v, kinds))
    elif isinstance(expected, list):
        options = list(expected)
        if not all(isinstance(option, str) for option in options):
            raise _UnusualSchemaError
        checks.append(lambda v: any(_type_ok(v, t) for t in options))
    if "enum" in schema:
        allowed = schema["enum"]
        checks.append(lambda v: v in allowed)
    dict_check = _compile_object(schema)
    if dict_check is not None:
        if expected == "object" and len(checks) == 1:  # the usual tool schema: one check
            return lambda v: isinstance(v, dict) and dict_check(v)
        checks.append(lambda v: not isinstance(v, dict) or dict_check(v))
    list_check = _compile_array(schema)
    if list_check is not None:
        checks.append(lambda v: not isinstance(v, list) or list_check(v))
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    return lambda v: all(check(v) for check in checks)


def _compile_object(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list | tuple):
        raise _UnusualSchemaError
    closed = schema.get("additionalProperties") is False
    subs = {key: _compile(sub) for key, sub in props.items() if isinstance(sub, dict)}
    subs = {key: check for key, check in subs.items() if check is not _always}
    names = tuple(required)
    if not names and not closed and not subs:
        return None
    known = frozenset(props)

    def check(value: dict[str, Any]) -> bool:
        for name in names:
            if name not in value:
                return False
        if closed:
            for key in value:
                if key not in known:
                    return False
        if subs:
            for key, item in value.items():
                sub = subs.get(key)
                if sub is not None and not sub(item):
                    return False
        return True

    return check


def _compile_array(schema: dict[str, Any]) -> Callable[[list[Any]], bool] | None:
    low = schema.get("minItems")
    high = schema.get("maxItems")
    for key in ("minItems", "maxItems"):
        bound = schema.get(key)
        if key in schema and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise _UnusualSchemaError
    items = schema.get("items")
    item_check = _compile(items) if isinstance(items, dict) else None
    if item_check is _always:
        item_check = None
    if low is None and high is None and item_check is None:
        return None

    def check(value: list[Any]) -> bool:
        if low is not None and len(value) < low:
            return False
        if high is not None and len(value) > high:
            return False
        return item_check is None or all(item_check(item) for item in value)

    return check
