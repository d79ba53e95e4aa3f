"""Typed output: ``chat(..., output_type=T)`` validates the answer into ``reply.output``.

Two ways to get the answer, chosen per type (see ``docs/conversations.md``):

* **native** (the default): each request of the turn carries the API's
  structured output format, ``output_config: {"format": {"type":
  "json_schema", "schema": ...}}``, so the model's final text is JSON of the
  schema. The schema is made strict the way the API asks (every object
  ``additionalProperties: false``; the constraints it does not take, such as
  ``minimum`` or ``maxLength``, are left out of it and checked here by
  pydantic).
* **tool**: for a type the native format cannot express (a recursive
  schema), the turn offers one more tool, ``final_answer``, whose input schema
  is the type's; the model calls it with the answer.

Either way the answer is validated by pydantic. An invalid answer goes back
to the model with the errors (a user message after a text answer, the tool's
error result after a ``final_answer`` call), at most ``output_retries``
times; then :class:`~conjure_async.OutputValidationError`. A type that is not
an object is wrapped as ``{"result": ...}`` (both ways need an object).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import TypeAdapter, ValidationError

from conjure_async._exceptions import OutputValidationError, SessionStateError
from conjure_async._turn import ToolSpec
from conjure_async.backends._base import Backend, ToolCall, ToolContext, ToolEvent, ToolResult
from conjure_async.messages import MessagesRequest, ToolDefinition

if TYPE_CHECKING:
    from conjure_async._session import Session
    from conjure_async._tool_execution import Emit
    from conjure_async._turn import Action
    from conjure_async.events import Reply

__all__ = ["OUTPUT_TOOL", "RETRY_TEXT", "OutputSpec"]

OUTPUT_TOOL: Final = "final_answer"
"""The tool offered for the answer when the native format cannot express the type."""
RETRY_TEXT: Final = (
    "Your answer does not match the required output format:\n{errors}\n"
    "Answer again, fixing these errors."
)
"""What the model is told about an invalid answer."""
TOOL_MISSING: Final = (
    f"Give your final answer by calling the {OUTPUT_TOOL} tool, with input matching its schema."
)
"""What the model is told when it answered in text instead of calling ``final_answer``."""
ACCEPTED: Final = "Final answer received."
_UNSUPPORTED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "uniqueItems",
        "pattern",
        "format",
        "default",
        "title",
    }
)
"""Keywords left out of a native schema (pydantic still checks them)."""


class _InvalidError(Exception):
    def __init__(self, errors: str, output: str) -> None:
        super().__init__(errors)
        self.errors = errors
        self.output = output


class OutputSpec:
    """How one chat gets and checks its typed output.

    Args:
        output_type: A pydantic model or any type pydantic validates.
        retries: Invalid answers sent back to the model before giving up.
    """

    def __init__(self, output_type: Any, *, retries: int) -> None:
        if retries < 0:
            raise ValueError("output_retries must not be negative")
        self.retries = retries
        self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        schema = self.adapter.json_schema()
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):  # a recursive model's schema
            defs = schema.get("$defs") or {}
            schema = {**defs.get(ref.removeprefix("#/$defs/"), {}), "$defs": defs}
        self.wrapped = schema.get("type") != "object"
        if self.wrapped:
            defs = schema.pop("$defs", None)
            schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
            if defs:
                schema["$defs"] = defs
        self.schema = schema
        self.mode = "tool" if _recursive(schema) else "native"

    # -- checking ----------------------------------------------------------

    def parse(self, data: str | dict[str, Any]) -> Any:
        """The validated value of an answer (JSON text, or a tool's input).

        Raises:
            _InvalidError: The answer is not JSON, or does not validate.
        """
        shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        if isinstance(data, str):
            try:
                data = json.loads(_unfenced(data))
            except ValueError as exc:
                raise _InvalidError(f"the answer is not valid JSON ({exc})", shown) from None
        try:
            if self.wrapped:
                if not isinstance(data, dict) or "result" not in data:
                    raise _InvalidError('expected an object {"result": ...}', shown)
                data = data["result"]
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            raise _InvalidError(_errors(exc), shown) from None

    # -- the turn ----------------------------------------------------------

    async def run(
        self,
        session: Session[Any],
        message: str | list[dict[str, Any]],
        emit: Emit | None,
        start: Action | None,
    ) -> Reply[Any]:
        """Run the turn (and the retries) with the output format or tool in every request."""
        if self.mode == "native":
            return await self._run_native(session, message, emit, start)
        return await self._run_tool(session, message, emit, start)

    async def _run_native(
        self,
        session: Session[Any],
        message: str | list[dict[str, Any]],
        emit: Emit | None,
        start: Action | None,
    ) -> Reply[Any]:
        output_format = {"type": "json_schema", "schema": strict_schema(self.schema)}

        def amend(request: MessagesRequest) -> None:
            extra = request.__pydantic_extra__
            assert extra is not None  # MessagesRequest keeps extra fields
            config = dict(extra.get("output_config") or {})
            config["format"] = output_format
            extra["output_config"] = config

        models = session._models
        models.amend = amend
        try:
            replies = [await session._run_turn(message, emit, start)]
            tries = 0
            while not replies[-1].pending:
                try:
                    value = self.parse(replies[-1].text)
                except _InvalidError as bad:
                    if tries >= self.retries:
                        raise OutputValidationError(
                            bad.errors, retries=tries, output=bad.output
                        ) from None
                    tries += 1
                    retry = RETRY_TEXT.format(errors=bad.errors)
                    replies.append(await session._run_turn(retry, emit, None))
                    continue
                return _merged(replies, value)
            return _merged(replies, None)
        finally:
            models.amend = None

    async def _run_tool(
        self,
        session: Session[Any],
        message: str | list[dict[str, Any]],
        emit: Emit | None,
        start: Action | None,
    ) -> Reply[Any]:
        answer = _AnswerTool(self)
        definition = {
            "name": OUTPUT_TOOL,
            "description": answer.description,
            "input_schema": self.schema,
        }
        engine, runner, models = session._engine, session._tools, session._models
        if OUTPUT_TOOL in runner._routes:
            raise SessionStateError(
                f"a tool named {OUTPUT_TOOL!r} exists already; typed output of this type needs "
                "the name for its answer tool"
            )

        def amend(request: MessagesRequest) -> None:
            request.tools = [*(request.tools or []), definition]

        # Any object reaches the answer tool: pydantic checks it there, and counts the retries.
        engine._specs[OUTPUT_TOOL] = ToolSpec(OUTPUT_TOOL, answer.kind, {"type": "object"})
        runner._routes[OUTPUT_TOOL] = answer
        runner._kinds[OUTPUT_TOOL] = answer.kind
        models.amend = amend
        try:
            replies = [await session._run_turn(message, emit, start)]
            while not replies[-1].pending and not answer.accepted:
                if answer.failures >= self.retries + 1 or answer.reminded >= self.retries:
                    raise OutputValidationError(
                        answer.errors or "the model never called the final_answer tool",
                        retries=answer.failures + answer.reminded,
                        output=answer.last or replies[-1].text,
                    )
                answer.reminded += 1
                replies.append(await session._run_turn(TOOL_MISSING, emit, None))
            return _merged(replies, answer.value if answer.accepted else None)
        finally:
            models.amend = None
            for table in (engine._specs, engine._checks, runner._routes, runner._kinds):
                table.pop(OUTPUT_TOOL, None)


class _AnswerTool(Backend):
    """The ``final_answer`` tool of one chat: validates its input as the typed output."""

    kind: ClassVar[str] = "output"

    def __init__(self, spec: OutputSpec) -> None:
        self.spec = spec
        self.description = "Give your final answer: call this once, with the answer as input."
        self.accepted = False
        self.value: Any = None
        self.failures = 0
        self.reminded = 0
        self.errors = ""
        self.last = ""

    def tools(self) -> Sequence[ToolDefinition]:
        return []

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        try:
            value = self.spec.parse(call.input)
        except _InvalidError as bad:
            self.failures += 1
            self.errors, self.last = bad.errors, bad.output
            if self.failures > self.spec.retries:
                raise OutputValidationError(
                    bad.errors, retries=self.failures - 1, output=bad.output
                ) from None
            yield ToolResult(output=RETRY_TEXT.format(errors=bad.errors), is_error=True)
            return
        self.accepted, self.value = True, value
        yield ToolResult(output=ACCEPTED)


def strict_schema(schema: Any) -> Any:
    """The schema as the native format takes it: closed objects, no unsupported keywords."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED and not isinstance(value, dict):
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        else:
            out[key] = strict_schema(value)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    return out


def _recursive(schema: dict[str, Any]) -> bool:
    """Whether a definition refers to itself, directly or through others."""
    defs = schema.get("$defs") or {}
    graph = {name: _refs(body) for name, body in defs.items()}

    def reaches(start: str) -> bool:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            name = todo.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
        return False

    return any(reaches(name) for name in graph)


def _refs(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                found.add(ref.removeprefix("#/$defs/"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _unfenced(text: str) -> str:
    """The JSON inside a Markdown code fence, or the text as it is."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        return body.split("\n", 1)[1] if "\n" in body else body
    return stripped


def _errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(the answer)"
        lines.append(f"- {where}: {error['msg']}")
    return "\n".join(lines)


def _merged(replies: list[Reply[Any]], value: Any) -> Reply[Any]:
    """One reply for a chat that took several turns (retries): sums and lists joined."""
    last = replies[-1]
    if len(replies) == 1:
        return last.model_copy(update={"output": value})
    usage = replies[0].usage
    for reply in replies[1:]:
        usage = usage + reply.usage
    return last.model_copy(
        update={
            "output": value,
            "usage": usage,
            "tool_calls": [c for r in replies for c in r.tool_calls],
            "files": [f for r in replies for f in r.files],
            "iterations": sum(r.iterations for r in replies),
        }
    )
