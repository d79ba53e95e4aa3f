"""A small JSON Schema checker for tool arguments from the model.

It covers what tool schemas use in practice (``type``, ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``,
``minItems``/``maxItems``) and ignores keywords it does not know, so it never
rejects valid input; backends may validate more strictly (the native backend
validates with pydantic).
"""

from __future__ import annotations

from typing import Any

__all__ = ["schema_errors"]

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
