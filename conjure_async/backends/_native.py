"""The Native backend: skills written as async Python callables.

Native tools run in-process, in the session's event loop, with full access to
the application's own objects through ``ctx.deps`` (a database pool, an HTTP
client, settings). There is no subprocess and no shell. Two forms, both first
class, may be mixed in one backend:

* **Functions.** Plain ``async def`` functions registered with :func:`tool`
  (or :meth:`NativeBackend.tool`). The tool's JSON schema comes from the type
  hints and the Google docstring (summary and ``Args:`` section); the model's
  arguments are validated with pydantic before the call::

      @tool
      async def fetch_orders(
          ctx: ToolContext[Deps], customer: str, limit: Annotated[int, Field(le=100)] = 10
      ) -> list[Order]:
          \"\"\"Fetch a customer's latest orders.\"\"\"
          return await ctx.deps.db.orders(customer, limit)

  (With a Google ``Args:`` section in the docstring, its entries describe
  the parameters in the schema.)

* **Skills.** A class (a :class:`NativeSkill` subclass, or any object or
  module with ``name``, ``description`` and some of the four operations)
  implementing any of ``execute(command, ctx)``, ``read(path, ctx, offset=,
  limit=)``, ``write(path, content, ctx)`` and ``modify(path, old, new, ctx)``
  - the operations that mirror ``bash_tool``, ``view``, ``create_file`` and
  ``str_replace``. Each becomes a tool named ``<skill_name>_<operation>``
  (hyphens become underscores) and the skill is listed in the system prompt.

What a tool returns becomes the ``tool_result`` text: a ``str`` as is, a
pydantic model or other JSON-serializable data as JSON, ``None`` as
``(no output)``, and a :class:`ToolResult` as given (to mark an error or
report created files). A raised exception becomes an ``is_error`` result
``"ExcType: message"`` (with the traceback when ``include_tracebacks=True``);
cancellation (a timeout, a cancelled chat) propagates into the callable.

Native calls pass through the session loop like any backend's: concurrency
limit, ``tool_timeout``, approval hooks, events and ``execute_tool`` spans.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

import pydantic_core
from pydantic import BaseModel, ValidationError

from conjure_async._exceptions import BackendError, ToolConflictError
from conjure_async._logging import Logger, get_logger
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._native_skill import (
    OPERATION_ARGS,
    NativeSkill,
    SkillOperation,
    skill_operations,
)
from conjure_async.backends._native_tool import NativeTool, tool
from conjure_async.messages import ToolDefinition
from conjure_async.skills import SkillListing

__all__ = ["NO_OUTPUT", "NativeBackend", "NativeSkill", "NativeTool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

NO_OUTPUT = "(no output)"
"""What the model receives when a native tool returns ``None``."""


def _format_validation_error(tool_name: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"{where}: {item['msg']}")
    return f"Invalid arguments for {tool_name}: " + "; ".join(problems)


# -- the backend ---------------------------------------------------------------


def _is_skill(item: Any) -> bool:
    if isinstance(item, NativeSkill) or inspect.ismodule(item):
        return True
    return not callable(item) and hasattr(item, "name")


def _to_result(value: Any) -> ToolResult:
    if isinstance(value, ToolResult):
        return value
    if isinstance(value, str):
        return ToolResult(output=value)
    if value is None:
        return ToolResult(output=NO_OUTPUT)
    if isinstance(value, BaseModel):
        return ToolResult(output=value.model_dump_json())
    try:
        return ToolResult(output=pydantic_core.to_json(value).decode())
    except pydantic_core.PydanticSerializationError as exc:
        return ToolResult(
            output=f"The tool returned a value that cannot be serialized: {exc}", is_error=True
        )


class NativeBackend(Backend):
    """Serves tools written as async Python callables, in-process.

    Register skills and tools when building it, or later with :meth:`add` and
    :meth:`tool`, before the session is created (the session reads the tool
    list once)::

        backend = NativeBackend(LogFetcher(), fetch_orders)

        @backend.tool
        async def now() -> str:
            \"\"\"The current UTC time.\"\"\"
            return datetime.now(UTC).isoformat()

        async with Session([backend, LocalBackend(skills)], model=model, deps=deps) as session:
            ...

    Args:
        *items: Skills (:class:`NativeSkill` instances or subclasses, or any
            object/module with ``name``, ``description`` and operations),
            tools made with :func:`tool`, or plain ``async def`` functions.
        include_tracebacks: Append the traceback to the error result when a
            tool raises (default: ``"ExcType: message"`` only).

    Raises:
        TypeError: An item is neither a skill nor an async function.
        ToolConflictError: Two items produce the same tool name.
    """

    kind: ClassVar[str] = "native"

    def __init__(self, *items: Any, include_tracebacks: bool = False) -> None:
        self.include_tracebacks = include_tracebacks
        self._skills: list[SkillListing] = []
        self._entries: dict[str, NativeTool[..., Any] | SkillOperation] = {}
        self._open = False
        self._log: Logger = get_logger(backend="native")
        for item in items:
            self.add(item)

    def __repr__(self) -> str:
        return f"NativeBackend(tools={list(self._entries)})"

    # -- registration ----------------------------------------------------------

    def add(self, item: Any) -> None:
        """Register a skill, a :func:`tool`, or an ``async def`` function.

        Raises:
            TypeError: ``item`` is neither a skill nor an async function.
            ToolConflictError: Its tool name is already registered here.
            BackendError: The backend is already in use by an open session.
        """
        if self._open:
            raise BackendError("register native tools before the session is created")
        if isinstance(item, type) and issubclass(item, NativeSkill):
            item = item()
        if isinstance(item, NativeTool):
            self._register(item.name, item)
        elif _is_skill(item):
            operations = skill_operations(item)
            for operation in operations:
                self._register(operation.definition.name, operation)
            self._skills.append(SkillListing(operations[0].skill_name, item.description, None))
        elif callable(item):
            made = NativeTool(item)
            self._register(made.name, made)
        else:
            raise TypeError(f"not a native skill or tool: {item!r}")

    def _register(self, name: str, entry: NativeTool[..., Any] | SkillOperation) -> None:
        other = self._entries.get(name)
        if other is not None:
            raise ToolConflictError(
                f"native tool {name!r} is defined twice: by {_origin(other)} and {_origin(entry)}"
            )
        self._entries[name] = entry

    @overload
    def tool(self, function: Callable[P, Awaitable[R]], /) -> NativeTool[P, Awaitable[R]]: ...

    @overload
    def tool(
        self,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        run_in_thread: bool = False,
    ) -> Callable[[Callable[P, R]], NativeTool[P, R]]: ...

    def tool(
        self,
        function: Callable[P, Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        run_in_thread: bool = False,
    ) -> Any:
        """Register an async function as a tool of this backend (see :func:`tool`)."""
        if function is not None:
            native_tool: NativeTool[P, Any] = NativeTool(
                function, name=name, description=description
            )
            self.add(native_tool)
            return native_tool

        def decorate(fn: Callable[P, R]) -> NativeTool[P, R]:
            made = NativeTool(fn, name=name, description=description, run_in_thread=run_in_thread)
            self.add(made)
            return made

        return decorate

    # -- the Backend interface ---------------------------------------------------

    async def open(self, ctx: BackendContext) -> None:
        """Mark the backend in use by a session (it holds no resources)."""
        if self._open:
            raise BackendError("this NativeBackend is already in use by another session")
        self._open = True
        self._log = ctx.logger

    async def aclose(self) -> None:
        """Release the backend for another session."""
        self._open = False

    def skill_listings(self) -> Sequence[SkillListing]:
        """The native skills (name and description; they have no location)."""
        return list(self._skills)

    def prompt_notes(self) -> str | None:
        """Tell the model that native skills have no ``SKILL.md``: their tools are the way in."""
        if not self._skills:
            return None
        by_skill: dict[str, list[str]] = {}
        for name, entry in self._entries.items():
            if isinstance(entry, SkillOperation):
                by_skill.setdefault(entry.skill_name, []).append(name)
        listed = "; ".join(f"{skill}: {', '.join(tools)}" for skill, tools in by_skill.items())
        return (
            "Skills without a location run inside the application and have no SKILL.md "
            f"to read; use their tools directly ({listed})."
        )

    def tools(self) -> Sequence[ToolDefinition]:
        """One definition per function tool and per skill operation."""
        return [entry.definition for entry in self._entries.values()]

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Validate the arguments, call the Python code, yield its result."""
        yield await self._call(call, ctx)

    async def _call(self, call: ToolCall, ctx: ToolContext[Any]) -> ToolResult:
        entry = self._entries.get(call.name)
        if entry is None:
            return ToolResult(output=f"NativeBackend has no tool {call.name!r}", is_error=True)
        model = (
            entry.arguments_model
            if isinstance(entry, NativeTool)
            else OPERATION_ARGS[entry.operation]
        )
        try:
            arguments = model.model_validate(call.input)
        except ValidationError as exc:
            return ToolResult(output=_format_validation_error(call.name, exc), is_error=True)
        try:
            value = await entry.invoke(arguments, ctx)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is the model's information
            ctx.logger.info("native.tool_failed", error_type=type(exc).__name__, error=str(exc))
            return ToolResult(
                output=self._describe(exc), is_error=True, error_type=type(exc).__qualname__
            )
        return _to_result(value)

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.include_tracebacks:
            trace = "".join(traceback.format_exception(exc))
            text = f"{text}\n\n{trace.rstrip()}"
        return text


def _origin(entry: NativeTool[..., Any] | SkillOperation) -> str:
    if isinstance(entry, NativeTool):
        return f"function {getattr(entry.function, '__qualname__', entry.name)}"
    return f"skill {entry.skill_name!r} ({entry.operation})"
