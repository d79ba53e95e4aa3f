"""Native tools: an async function prepared as a tool (:func:`tool`, :class:`NativeTool`).

The tool's JSON schema comes from the function's type hints and its Google
docstring (summary and ``Args:`` section); the model's arguments are validated
with pydantic before the call. :class:`~conjure_async.backends.NativeBackend`
serves them (see :mod:`conjure_async.backends._native`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
import weakref
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, ParamSpec, TypeVar, overload

import anyio
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from conjure_async.backends._base import ToolContext
from conjure_async.backends._docstrings import parse_docstring
from conjure_async.messages import ToolDefinition

__all__ = ["MODEL_CONFIG", "TOOL_NAME", "NativeTool", "clean_schema", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What the API accepts as a tool name."""
MODEL_CONFIG = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)
"""The pydantic configuration of every arguments model (unknown arguments are refused)."""


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


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles (noise for the model)."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


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
        plan = _plan(function, name, description, qualname)
        self.name = plan.name
        self.description = plan.description
        self._ctx_param = plan.ctx_param
        self._params = plan.params
        self.arguments_model: type[BaseModel] = plan.arguments_model
        self.input_schema: dict[str, Any] = plan.input_schema
        self._definition = plan.definition
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"NativeTool({self.name!r})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the wrapped function directly (no validation, no injection)."""
        return self.function(*args, **kwargs)

    @property
    def definition(self) -> ToolDefinition:
        """The tool definition sent to the model (one per function, name and description)."""
        return self._definition

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


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What a function's tool is, apart from the function: built once per function."""

    name: str
    description: str
    ctx_param: str | None
    params: tuple[_Param, ...]
    arguments_model: type[BaseModel]
    input_schema: dict[str, Any]
    definition: ToolDefinition


_PLANS: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, str | None], _Plan]] = (
    weakref.WeakKeyDictionary()
)
"""Plans per function (and name/description override), forgotten with the function.

Building one costs about a millisecond (a pydantic model and its JSON schema);
an application building a ``NativeBackend`` per session or request from the
same functions pays it once. A plan holds no reference to its function.
"""


def _plan(
    function: Callable[..., Any], name: str | None, description: str | None, qualname: str
) -> _Plan:
    try:
        plans = _PLANS.get(function)
    except TypeError:  # not weak-referenceable (or not hashable): no caching
        return _build_plan(function, name, description, qualname)
    key = (name, description)
    if plans is not None and (plan := plans.get(key)) is not None:
        return plan
    plan = _build_plan(function, name, description, qualname)
    _PLANS.setdefault(function, {})[key] = plan
    return plan


def _build_plan(
    function: Callable[..., Any], name: str | None, description: str | None, qualname: str
) -> _Plan:
    tool_name = name or function.__name__
    if not TOOL_NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must match {TOOL_NAME.pattern}")
    summary, arg_docs = parse_docstring(inspect.getdoc(function))
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as exc:
        raise TypeError(f"cannot resolve the type hints of {qualname}: {exc}") from exc
    ctx_param: str | None = None
    params: list[_Param] = []
    fields: dict[str, Any] = {}
    for index, param in enumerate(inspect.signature(function).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{qualname}: *args and **kwargs cannot be tool arguments")
        annotation = hints.get(param.name, param.annotation)
        if _is_tool_context(annotation):
            if ctx_param is not None:
                raise TypeError(f"{qualname} takes more than one ToolContext parameter")
            ctx_param = param.name
            continue
        if annotation is inspect.Parameter.empty:
            annotation = Any
        info = Field(alias=param.name)
        if param.name in arg_docs and not _has_description(annotation):
            info = Field(alias=param.name, description=arg_docs[param.name])
        default = ... if param.default is inspect.Parameter.empty else param.default
        field = f"p{index}"
        fields[field] = (Annotated[annotation, info], default)
        params.append(_Param(param.name, field, param.kind))
    model_name = "".join(part.title() for part in tool_name.split("_")) + "Arguments"
    arguments_model: type[BaseModel] = pydantic.create_model(
        model_name, __config__=MODEL_CONFIG, **fields
    )
    input_schema = clean_schema(arguments_model.model_json_schema(by_alias=True))
    text = description if description is not None else summary
    return _Plan(
        name=tool_name,
        description=text,
        ctx_param=ctx_param,
        params=tuple(params),
        arguments_model=arguments_model,
        input_schema=input_schema,
        definition=ToolDefinition(name=tool_name, description=text, input_schema=input_schema),
    )


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
