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

import dataclasses
import functools
import inspect
import re
import traceback
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Annotated, Any, ClassVar, Generic, ParamSpec, TypeVar, overload

import anyio
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

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
from conjure_async.backends._docstrings import parse_docstring
from conjure_async.messages import ToolDefinition
from conjure_async.skills import SkillListing

__all__ = ["NativeBackend", "NativeSkill", "NativeTool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

OPERATIONS: tuple[str, ...] = ("execute", "read", "write", "modify")
"""The skill operations, in the order their tools are listed."""

NO_OUTPUT = "(no output)"
"""What the model receives when a native tool returns ``None``."""

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODEL_CONFIG = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)


# -- tools ---------------------------------------------------------------------


def _is_tool_context(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.split("[", 1)[0].strip().rsplit(".", 1)[-1] == "ToolContext"
    if typing.get_origin(annotation) is Annotated:
        return _is_tool_context(typing.get_args(annotation)[0])
    return annotation is ToolContext or typing.get_origin(annotation) is ToolContext


def _has_description(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(isinstance(meta, FieldInfo) and meta.description for meta in annotation.__metadata__)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles (noise for the model)."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def _format_validation_error(tool_name: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"{where}: {item['msg']}")
    return f"Invalid arguments for {tool_name}: " + "; ".join(problems)


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    name: str
    field: str
    kind: inspect._ParameterKind


class NativeTool(Generic[P, R]):
    """An async function prepared as a tool (what :func:`tool` returns).

    Calling it calls the function unchanged, so it stays unit-testable. The
    backend validates the model's arguments against :attr:`arguments_model`,
    injects the :class:`ToolContext` into the parameter annotated with it,
    and serializes the return value.

    Attributes:
        name: The tool name the model calls.
        description: The tool description (the docstring's summary by default).
        function: The wrapped function.
        run_in_thread: True when a sync function runs in a worker thread.
        arguments_model: The pydantic model validating the arguments.
        input_schema: The JSON schema sent to the model.
    """

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        run_in_thread: bool = False,
    ) -> None:
        is_async = inspect.iscoroutinefunction(function)
        qualname = getattr(function, "__qualname__", repr(function))
        if run_in_thread and is_async:
            raise TypeError(f"{qualname} is async; run_in_thread=True is for sync functions")
        if not run_in_thread and not is_async:
            raise TypeError(
                f"{qualname} is not an async function: define it with 'async def', or pass "
                "run_in_thread=True to run it in a worker thread"
            )
        self.function = function
        self.run_in_thread = run_in_thread
        self.name = name or function.__name__
        if not _TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_TOOL_NAME.pattern}")
        summary, arg_docs = parse_docstring(inspect.getdoc(function))
        self.description = description if description is not None else summary
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except (NameError, TypeError) as exc:
            raise TypeError(f"cannot resolve the type hints of {qualname}: {exc}") from exc
        self._ctx_param: str | None = None
        self._params: list[_Param] = []
        fields: dict[str, Any] = {}
        for index, param in enumerate(inspect.signature(function).parameters.values()):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{qualname}: *args and **kwargs cannot be tool arguments")
            annotation = hints.get(param.name, param.annotation)
            if _is_tool_context(annotation):
                if self._ctx_param is not None:
                    raise TypeError(f"{qualname} takes more than one ToolContext parameter")
                self._ctx_param = param.name
                continue
            if annotation is inspect.Parameter.empty:
                annotation = Any
            info = Field(alias=param.name)
            if param.name in arg_docs and not _has_description(annotation):
                info = Field(alias=param.name, description=arg_docs[param.name])
            default = ... if param.default is inspect.Parameter.empty else param.default
            field = f"p{index}"
            fields[field] = (Annotated[annotation, info], default)
            self._params.append(_Param(param.name, field, param.kind))
        model_name = "".join(part.title() for part in self.name.split("_")) + "Arguments"
        self.arguments_model: type[BaseModel] = pydantic.create_model(
            model_name, __config__=_MODEL_CONFIG, **fields
        )
        schema = self.arguments_model.model_json_schema(by_alias=True)
        self.input_schema: dict[str, Any] = _clean_schema(schema)
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"NativeTool({self.name!r})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the wrapped function directly (no validation, no injection)."""
        return self.function(*args, **kwargs)

    @property
    def definition(self) -> ToolDefinition:
        """The tool definition sent to the model."""
        return ToolDefinition(
            name=self.name, description=self.description, input_schema=self.input_schema
        )

    async def invoke(self, arguments: BaseModel, ctx: ToolContext[Any]) -> Any:
        """Call the function with validated ``arguments`` and ``ctx``; return its value."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self._params:
            value = getattr(arguments, param.field)
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        if self._ctx_param is not None:
            kwargs[self._ctx_param] = ctx
        function: Callable[..., Any] = self.function
        if self.run_in_thread:
            return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))
        return await function(*args, **kwargs)


@overload
def tool(function: Callable[P, Awaitable[R]], /) -> NativeTool[P, Awaitable[R]]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    run_in_thread: bool = False,
) -> Callable[[Callable[P, R]], NativeTool[P, R]]: ...


def tool(
    function: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    run_in_thread: bool = False,
) -> NativeTool[P, Any] | Callable[[Callable[P, R]], NativeTool[P, R]]:
    """Make an async function a native tool; use as ``@tool`` or ``@tool(...)``.

    The JSON schema comes from the type hints (any type pydantic validates:
    ``Literal``, ``Annotated[int, Field(ge=0)]``, models, lists...) and the
    Google docstring: its summary is the tool description and its ``Args:``
    entries describe the parameters. A parameter annotated with
    :class:`ToolContext` receives the call's context and is not part of the
    schema.

    Args:
        function: The ``async def`` function (when used as ``@tool``).
        name: The tool name (default: the function's name).
        description: The tool description (default: the docstring's summary).
        run_in_thread: Accept a *sync* function and run it in a worker thread
            (``anyio.to_thread.run_sync``); it cannot be cancelled once started.

    Returns:
        A :class:`NativeTool` (or a decorator making one).

    Raises:
        TypeError: The function is not async (and ``run_in_thread`` is false),
            takes ``*args``/``**kwargs``, or its type hints cannot be resolved.
        ValueError: The tool name is not valid for the API.
    """
    if function is not None:
        return NativeTool(function, name=name, description=description)

    def decorate(fn: Callable[P, R]) -> NativeTool[P, R]:
        return NativeTool(fn, name=name, description=description, run_in_thread=run_in_thread)

    return decorate


# -- skills ----------------------------------------------------------------------


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
    model_config = _MODEL_CONFIG
    command: str = Field(description="The command to run.")


class _ReadArgs(BaseModel):
    model_config = _MODEL_CONFIG
    path: str = Field(description="What to read.")
    offset: int = Field(0, ge=0, description="Where to start (0: the beginning).")
    limit: int | None = Field(None, ge=1, description="How much to read at most (omit: all).")


class _WriteArgs(BaseModel):
    model_config = _MODEL_CONFIG
    path: str = Field(description="Where to write.")
    content: str = Field(description="The full content to write.")


class _ModifyArgs(BaseModel):
    model_config = _MODEL_CONFIG
    path: str = Field(description="What to modify.")
    old: str = Field(description="The exact text to replace.")
    new: str = Field(description="The replacement text.")


_OPERATION_ARGS: dict[str, type[BaseModel]] = {
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
class _SkillOperation:
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


def _skill_operations(skill: Any) -> list[_SkillOperation]:
    name = getattr(skill, "name", None)
    description = getattr(skill, "description", None)
    if not isinstance(name, str) or not name or not isinstance(description, str):
        raise TypeError(f"a native skill needs a non-empty 'name' and a 'description': {skill!r}")
    declared = getattr(skill, "operations", None)
    wanted = list(OPERATIONS if declared is None else declared)
    unknown = sorted(set(wanted) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"skill {name!r}: unknown operations {unknown}; use {list(OPERATIONS)}")
    found: list[_SkillOperation] = []
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
        if not _TOOL_NAME.match(tool_name):
            raise ValueError(f"skill name {name!r} makes an invalid tool name {tool_name!r}")
        summary, _ = parse_docstring(inspect.getdoc(method))
        text = summary or _OPERATION_DOCS[operation].format(name=name)
        if description:
            text = f"{text}\n\n{name}: {description}"
        schema = _clean_schema(_OPERATION_ARGS[operation].model_json_schema())
        definition = ToolDefinition(name=tool_name, description=text, input_schema=schema)
        found.append(_SkillOperation(skill, name, operation, method, definition))
    if not found:
        raise TypeError(f"skill {name!r} defines none of the operations {list(OPERATIONS)}")
    return found


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
        self._entries: dict[str, NativeTool[..., Any] | _SkillOperation] = {}
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
            operations = _skill_operations(item)
            for operation in operations:
                self._register(operation.definition.name, operation)
            self._skills.append(SkillListing(operations[0].skill_name, item.description, None))
        elif callable(item):
            made = NativeTool(item)
            self._register(made.name, made)
        else:
            raise TypeError(f"not a native skill or tool: {item!r}")

    def _register(self, name: str, entry: NativeTool[..., Any] | _SkillOperation) -> None:
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
            if isinstance(entry, _SkillOperation):
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
            else _OPERATION_ARGS[entry.operation]
        )
        try:
            arguments = model.model_validate(call.input)
        except ValidationError as exc:
            return ToolResult(output=_format_validation_error(call.name, exc), is_error=True)
        try:
            value = await entry.invoke(arguments, ctx)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is the model's information
            ctx.logger.info("native.tool_failed", error_type=type(exc).__name__, error=str(exc))
            return ToolResult(output=self._describe(exc), is_error=True)
        return _to_result(value)

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.include_tracebacks:
            trace = "".join(traceback.format_exception(exc))
            text = f"{text}\n\n{trace.rstrip()}"
        return text


def _origin(entry: NativeTool[..., Any] | _SkillOperation) -> str:
    if isinstance(entry, NativeTool):
        return f"function {getattr(entry.function, '__qualname__', entry.name)}"
    return f"skill {entry.skill_name!r} ({entry.operation})"
