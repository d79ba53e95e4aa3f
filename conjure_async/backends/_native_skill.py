"""Native skills: a class (or any object or module) whose async operations become tools.

A skill implements any of ``execute(command, ctx)``, ``read(path, ctx,
offset=, limit=)``, ``write(path, content, ctx)`` and ``modify(path, old, new,
ctx)``; each becomes a tool ``<skill_name>_<operation>`` with a fixed
arguments model. :class:`~conjure_async.backends.NativeBackend` serves them
(see :mod:`conjure_async.backends._native`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from conjure_async.backends._base import ToolContext
from conjure_async.backends._docstrings import parse_docstring
from conjure_async.backends._native_tool import MODEL_CONFIG, TOOL_NAME, clean_schema
from conjure_async.messages import ToolDefinition

__all__ = ["OPERATIONS", "OPERATION_ARGS", "NativeSkill", "SkillOperation", "skill_operations"]

OPERATIONS: tuple[str, ...] = ("execute", "read", "write", "modify")
"""The skill operations, in the order their tools are listed."""


class NativeSkill:
    """Base class of skills written in Python.

    Set :attr:`name` and :attr:`description` and define any of the async
    operations; each becomes a tool ``<name>_<operation>`` (hyphens become
    underscores)::

        class LogFetcher(NativeSkill):
            name = "log-fetcher"
            description = "Fetch service logs from the log API."

            async def execute(self, command: str, ctx: ToolContext[Deps]) -> str: ...
            async def read(
                self, path: str, ctx: ToolContext[Deps], *, offset: int = 0,
                limit: int | None = None,
            ) -> str: ...
            async def write(self, path: str, content: str, ctx: ToolContext[Deps]) -> str: ...
            async def modify(
                self, path: str, old: str, new: str, ctx: ToolContext[Deps]
            ) -> str: ...

    A docstring on an operation replaces the default tool description.
    Subclassing is optional: any object or module with ``name``,
    ``description`` and some of the operations is accepted.

    Attributes:
        name: The skill's name (shown in the system prompt).
        description: What it does and when to use it.
        operations: The operations offered as tools (default: every one defined).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    operations: ClassVar[Collection[str] | None] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _ExecuteArgs(BaseModel):
    model_config = MODEL_CONFIG
    command: str = Field(description="The command to run.")


class _ReadArgs(BaseModel):
    model_config = MODEL_CONFIG
    path: str = Field(description="What to read.")
    offset: int = Field(0, ge=0, description="Where to start (0: the beginning).")
    limit: int | None = Field(None, ge=1, description="How much to read at most (omit: all).")


class _WriteArgs(BaseModel):
    model_config = MODEL_CONFIG
    path: str = Field(description="Where to write.")
    content: str = Field(description="The full content to write.")


class _ModifyArgs(BaseModel):
    model_config = MODEL_CONFIG
    path: str = Field(description="What to modify.")
    old: str = Field(description="The exact text to replace.")
    new: str = Field(description="The replacement text.")


OPERATION_ARGS: dict[str, type[BaseModel]] = {
    "execute": _ExecuteArgs,
    "read": _ReadArgs,
    "write": _WriteArgs,
    "modify": _ModifyArgs,
}
_OPERATION_CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "execute": (("command", None), {}),
    "read": (("path", None), {"offset": 0, "limit": None}),
    "write": (("path", "content", None), {}),
    "modify": (("path", "old", "new", None), {}),
}
_OPERATION_SIGNATURES = {
    "execute": "(command, ctx)",
    "read": "(path, ctx, *, offset, limit)",
    "write": "(path, content, ctx)",
    "modify": "(path, old, new, ctx)",
}
_OPERATION_DOCS = {
    "execute": "Run a command of the {name} skill and return its output.",
    "read": "Read from the {name} skill (optionally from `offset`, at most `limit`).",
    "write": "Write content with the {name} skill.",
    "modify": "Replace exact text with the {name} skill.",
}


@dataclasses.dataclass(frozen=True, slots=True)
class SkillOperation:
    skill: Any
    skill_name: str
    operation: str
    method: Callable[..., Awaitable[Any]]
    definition: ToolDefinition

    async def invoke(self, arguments: BaseModel, ctx: ToolContext[Any]) -> Any:
        match arguments:
            case _ExecuteArgs(command=command):
                return await self.method(command, ctx)
            case _ReadArgs(path=path, offset=offset, limit=limit):
                return await self.method(path, ctx, offset=offset, limit=limit)
            case _WriteArgs(path=path, content=content):
                return await self.method(path, content, ctx)
            case _ModifyArgs(path=path, old=old, new=new):
                return await self.method(path, old, new, ctx)
        raise AssertionError(f"unexpected arguments {arguments!r}")  # pragma: no cover


def skill_operations(skill: Any) -> list[SkillOperation]:
    name = getattr(skill, "name", None)
    description = getattr(skill, "description", None)
    if not isinstance(name, str) or not name or not isinstance(description, str):
        raise TypeError(f"a native skill needs a non-empty 'name' and a 'description': {skill!r}")
    declared = getattr(skill, "operations", None)
    wanted = list(OPERATIONS if declared is None else declared)
    unknown = sorted(set(wanted) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"skill {name!r}: unknown operations {unknown}; use {list(OPERATIONS)}")
    found: list[SkillOperation] = []
    for operation in OPERATIONS:
        if operation not in wanted:
            continue
        method = getattr(skill, operation, None)
        if method is None:
            if declared is not None:
                raise TypeError(f"skill {name!r} allows {operation!r} but does not define it")
            continue
        if not inspect.iscoroutinefunction(method):
            raise TypeError(f"skill {name!r}: {operation} must be an 'async def' method")
        args, kwargs = _OPERATION_CALLS[operation]
        try:
            inspect.signature(method).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(
                f"skill {name!r}: {operation} must accept {_OPERATION_SIGNATURES[operation]} "
                f"({exc})"
            ) from exc
        tool_name = f"{name}_{operation}".replace("-", "_")
        if not TOOL_NAME.match(tool_name):
            raise ValueError(f"skill name {name!r} makes an invalid tool name {tool_name!r}")
        summary, _ = parse_docstring(inspect.getdoc(method))
        text = summary or _OPERATION_DOCS[operation].format(name=name)
        if description:
            text = f"{text}\n\n{name}: {description}"
        schema = clean_schema(OPERATION_ARGS[operation].model_json_schema())
        definition = ToolDefinition(name=tool_name, description=text, input_schema=schema)
        found.append(SkillOperation(skill, name, operation, method, definition))
    if not found:
        raise TypeError(f"skill {name!r} defines none of the operations {list(OPERATIONS)}")
    return found
