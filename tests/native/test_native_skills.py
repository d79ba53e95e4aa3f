"""Skill classes: operations as tools, schemas, listings, calls."""

from __future__ import annotations

import types
from typing import Any

import pytest

from conjure_async import Session
from conjure_async.backends import NativeBackend, NativeSkill, ToolContext
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


class Notes(NativeSkill):
    """An in-memory notebook exposing all four operations."""

    name = "note-book"
    description = "Keep short notes in memory."

    def __init__(self) -> None:
        self.files: dict[str, str] = {"todo": "a\nb\nc\nd"}
        self.calls: list[tuple[Any, ...]] = []

    async def execute(self, command: str, ctx: ToolContext[Any]) -> str:
        self.calls.append(("execute", command, ctx.tool_name))
        return " ".join(sorted(self.files)) if command == "ls" else f"unknown: {command}"

    async def read(
        self, path: str, ctx: ToolContext[Any], *, offset: int = 0, limit: int | None = None
    ) -> str:
        """Read lines of a note."""
        self.calls.append(("read", path, offset, limit))
        lines = self.files[path].splitlines()
        end = None if limit is None else offset + limit
        return "\n".join(lines[offset:end])

    async def write(self, path: str, content: str, ctx: ToolContext[Any]) -> str:
        self.files[path] = content
        return f"wrote {path}"

    async def modify(self, path: str, old: str, new: str, ctx: ToolContext[Any]) -> str:
        self.files[path] = self.files[path].replace(old, new, 1)
        return f"modified {path}"


async def run(backend: NativeBackend, *calls: dict[str, Any]) -> list[tuple[str, bool]]:
    model = ScriptedModel([tool_use_response(*calls), text_response("done")])
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
    return [(record.output, record.is_error) for record in reply.tool_calls]


def test_each_operation_becomes_a_tool_named_after_the_skill() -> None:
    names = [d.name for d in NativeBackend(Notes()).tools()]
    assert names == [
        "note_book_execute",
        "note_book_read",
        "note_book_write",
        "note_book_modify",
    ]


def test_operation_schemas_describe_their_arguments() -> None:
    schemas = {d.name: d.input_schema for d in NativeBackend(Notes()).tools()}
    assert {name: (s["required"], list(s["properties"])) for name, s in schemas.items()} == {
        "note_book_execute": (["command"], ["command"]),
        "note_book_read": (["path"], ["path", "offset", "limit"]),
        "note_book_write": (["path", "content"], ["path", "content"]),
        "note_book_modify": (["path", "old", "new"], ["path", "old", "new"]),
    }


def test_operation_docstring_replaces_the_default_description() -> None:
    descriptions = {d.name: d.description for d in NativeBackend(Notes()).tools()}
    assert descriptions["note_book_read"] == (
        "Read lines of a note.\n\nnote-book: Keep short notes in memory."
    )
    assert descriptions["note_book_execute"] == (
        "Run a command of the note-book skill and return its output."
        "\n\nnote-book: Keep short notes in memory."
    )


def test_operations_attribute_limits_the_tools() -> None:
    class ReadOnlyNotes(Notes):
        operations = ("read",)

    assert [d.name for d in NativeBackend(ReadOnlyNotes()).tools()] == ["note_book_read"]


def test_allowed_operation_that_is_not_defined_is_refused() -> None:
    class Empty(NativeSkill):
        name = "empty"
        description = "Nothing."
        operations = ("execute",)

    with pytest.raises(TypeError, match="allows 'execute' but does not define it"):
        NativeBackend(Empty())


def test_sync_operation_is_refused() -> None:
    class Sync(NativeSkill):
        name = "sync"
        description = "Blocking."

        def execute(self, command: str, ctx: ToolContext[Any]) -> str:
            return command

    with pytest.raises(TypeError, match="execute must be an 'async def' method"):
        NativeBackend(Sync())


def test_operation_with_the_wrong_signature_is_refused() -> None:
    class NoPaging(NativeSkill):
        name = "no-paging"
        description = "Reads without offset and limit."

        async def read(self, path: str, ctx: ToolContext[Any]) -> str:
            return path

    with pytest.raises(TypeError, match=r"read must accept \(path, ctx, \*, offset, limit\)"):
        NativeBackend(NoPaging())


def test_skill_class_itself_is_instantiated() -> None:
    assert len(NativeBackend(Notes).tools()) == 4


def test_duck_typed_module_is_a_skill() -> None:
    async def execute(command: str, ctx: ToolContext[Any]) -> str:
        return command

    module = types.ModuleType("weather")
    module.name = "weather"  # type: ignore[attr-defined]
    module.description = "Current weather."  # type: ignore[attr-defined]
    module.execute = execute  # type: ignore[attr-defined]
    assert [d.name for d in NativeBackend(module).tools()] == ["weather_execute"]


async def test_skill_is_listed_in_the_system_prompt_without_location() -> None:
    model = ScriptedModel([text_response("hi")])
    async with Session(NativeBackend(Notes()), model=model, skills_instructions=False) as session:
        await session.chat("hello")
    assert session.system_prompt == (
        "<available_skills>\n<skill>\n<name>note-book</name>\n"
        "<description>Keep short notes in memory.</description>\n</skill>\n</available_skills>"
        "\n\nSkills without a location run inside the application and have no SKILL.md to "
        "read; use their tools directly (note-book: note_book_execute, note_book_read, "
        "note_book_write, note_book_modify)."
    )


def test_function_tools_alone_add_no_prompt_note() -> None:
    async def plain() -> None:
        return None

    assert NativeBackend(plain).prompt_notes() is None


async def test_operations_receive_their_arguments_and_context() -> None:
    notes = Notes()
    results = await run(
        NativeBackend(notes),
        tool_call("note_book_execute", {"command": "ls"}),
        tool_call("note_book_read", {"path": "todo", "offset": 1, "limit": 2}),
    )
    assert results == [("todo", False), ("b\nc", False)]
    assert notes.calls == [("execute", "ls", "note_book_execute"), ("read", "todo", 1, 2)]


async def test_write_and_modify_operations_change_state() -> None:
    notes = Notes()
    results = await run(
        NativeBackend(notes),
        tool_call("note_book_write", {"path": "new", "content": "x y"}),
    )
    results += await run(
        NativeBackend(notes),
        tool_call("note_book_modify", {"path": "new", "old": "x", "new": "z"}),
    )
    assert results == [("wrote new", False), ("modified new", False)]
    assert notes.files["new"] == "z y"


async def test_operation_argument_validation_errors_are_reported() -> None:
    results = await run(
        NativeBackend(Notes()), tool_call("note_book_read", {"path": "todo", "offset": -1})
    )
    message = (
        "Invalid arguments for note_book_read: offset: Input should be greater than or equal to 0"
    )
    assert results == [(message, True)]


async def test_exception_in_an_operation_becomes_an_error_result() -> None:
    results = await run(NativeBackend(Notes()), tool_call("note_book_read", {"path": "missing"}))
    assert results == [("KeyError: 'missing'", True)]
