"""Sessions that combine the native and local backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conjure_async import Session, SessionStateError, ToolConflictError, load_skills
from conjure_async.backends import LocalBackend, NativeBackend, NativeSkill, ToolContext, tool
from conjure_async.backends._base import ToolResult
from conjure_async.events import CreatedFile
from conjure_async.skills import Skill
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


class Inventory(NativeSkill):
    name = "inventory"
    description = "Look up stock levels."

    async def execute(self, command: str, ctx: ToolContext[dict[str, int]]) -> str:
        return str(ctx.deps[command])


@tool
async def save_note(text: str) -> ToolResult:
    """Save a note in the application's store."""
    created = CreatedFile(name="note.txt", source="native", path="memory://note.txt")
    return ToolResult(output=f"saved {len(text)} chars", files=(created,))


@pytest.fixture
def skills(tmp_path: Path) -> list[Skill]:
    folder = tmp_path / "skills" / "shell-helper"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        "---\nname: shell-helper\ndescription: Run small shell commands.\n---\n# Use bash_tool\n"
    )
    return list(load_skills(folder))


def backends(skills: list[Skill], tmp_path: Path) -> list[Any]:
    return [NativeBackend(Inventory(), save_note), LocalBackend(skills, workdir=tmp_path / "work")]


async def test_tools_are_routed_to_the_backend_that_offers_them(
    skills: list[Skill], tmp_path: Path
) -> None:
    model = ScriptedModel(
        [
            tool_use_response(
                tool_call("inventory_execute", {"command": "apples"}),
                tool_call("bash_tool", {"command": "echo from-local", "description": "echo"}),
            ),
            text_response("done"),
        ]
    )
    async with Session(backends(skills, tmp_path), model=model, deps={"apples": 7}) as session:
        reply = await session.chat("go")
    assert [(r.name, r.backend, r.output.strip()) for r in reply.tool_calls] == [
        ("inventory_execute", "native", "7"),
        ("bash_tool", "local", "from-local"),
    ]


async def test_the_model_sees_tools_of_every_backend(skills: list[Skill], tmp_path: Path) -> None:
    session = Session(backends(skills, tmp_path), model=ScriptedModel([]))
    assert [t["name"] for t in session.tools] == [
        "inventory_execute",
        "save_note",
        "view",
        "bash_tool",
        "create_file",
        "str_replace",
    ]


async def test_system_prompt_lists_skills_of_every_backend_with_their_locations(
    skills: list[Skill], tmp_path: Path
) -> None:
    model = ScriptedModel([text_response("hi")])
    async with Session(
        backends(skills, tmp_path), model=model, skills_instructions=False
    ) as session:
        prompt = session.system_prompt
    assert prompt is not None
    block = prompt.split("\n\n")[0]
    location = skills[0].path.resolve() / "SKILL.md"
    assert block == (
        "<available_skills>\n"
        "<skill>\n<name>inventory</name>\n<description>Look up stock levels.</description>\n"
        "</skill>\n"
        "<skill>\n<name>shell-helper</name>\n<description>Run small shell commands.</description>\n"
        f"<location>{location}</location>\n</skill>\n"
        "</available_skills>"
    )


def test_tool_name_clash_across_backends_names_both(skills: list[Skill]) -> None:
    @tool(name="bash_tool")
    async def my_bash(command: str, description: str) -> str:
        return command

    with pytest.raises(
        ToolConflictError,
        match=r"'bash_tool' is offered by both NativeBackend \(native\) and LocalBackend \(local\)",
    ):
        Session([NativeBackend(my_bash), LocalBackend(skills)], model=ScriptedModel([]))


async def test_created_files_of_every_backend_are_in_one_list_tagged_by_source(
    skills: list[Skill], tmp_path: Path
) -> None:
    model = ScriptedModel(
        [
            tool_use_response(
                tool_call("save_note", {"text": "hello"}),
                tool_call("bash_tool", {"command": "echo x > out.txt", "description": "w"}),
            ),
            text_response("done"),
        ]
    )
    async with Session(backends(skills, tmp_path), model=model) as session:
        reply = await session.chat("go")
    assert sorted((f.source, f.name) for f in reply.files) == [
        ("local", "out.txt"),
        ("native", "note.txt"),
    ]
    assert sorted((f.source, f.name) for f in session.files) == sorted(
        (f.source, f.name) for f in reply.files
    )


async def test_state_covers_every_backend_and_restores(skills: list[Skill], tmp_path: Path) -> None:
    model = ScriptedModel(
        [tool_use_response(tool_call("save_note", {"text": "hello"})), text_response("done")]
    )
    async with Session(backends(skills, tmp_path), model=model) as session:
        await session.chat("go")
        state = session.dump_state()
    assert [b["kind"] for b in state["backends"]] == ["native", "local"]

    restored = Session.restore(
        state, backend=backends(skills, tmp_path), model=ScriptedModel([text_response("again")])
    )
    assert restored.history == session.history
    assert [(f.source, f.name) for f in restored.files] == [("native", "note.txt")]


def test_restoring_with_different_backends_is_refused(skills: list[Skill], tmp_path: Path) -> None:
    state = Session(backends(skills, tmp_path), model=ScriptedModel([])).dump_state()
    with pytest.raises(SessionStateError, match=r"saved with backends \['native', 'local'\]"):
        Session.restore(state, backend=[LocalBackend(skills)], model=ScriptedModel([]))
