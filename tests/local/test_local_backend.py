"""The Local backend: the four skill tools on the host."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async import SandboxUnavailableError, Session, load_skills
from conjure_async.backends import LocalBackend
from conjure_async.testing import (
    ScriptedModel,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.helpers import gone, process_alive, wait_for_file

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"


def bash(command: str, **extra: Any) -> dict[str, Any]:
    return tool_call("bash_tool", {"command": command, "description": "test", **extra})


async def run_tools(backend: LocalBackend, *calls: dict[str, Any], **options: Any) -> list[Any]:
    """Run ``calls`` in one turn; return the tool call records."""
    model = ScriptedModel([tool_use_response(*calls), text_response("done")])
    async with Session(backend, model=model, **options) as session:
        reply = await session.chat("go")
    return reply.tool_calls


@pytest.fixture
def skills() -> list[Any]:
    return list(load_skills(EXAMPLES))


async def test_bash_runs_in_the_working_directory(tmp_path: Path) -> None:
    (record,) = await run_tools(LocalBackend(workdir=tmp_path), bash("pwd; echo hi"))
    assert record.output == f"{tmp_path.resolve()}\nhi\n"
    assert record.exit_code == 0
    assert not record.is_error


async def test_failing_command_returns_combined_output_and_exit_code() -> None:
    (record,) = await run_tools(LocalBackend(), bash("echo out; echo err >&2; exit 3"))
    assert record.is_error
    assert record.exit_code == 3
    assert record.output == "out\nerr\n\n[exit code 3]"


async def test_output_streams_as_chunks_while_the_command_runs() -> None:
    model = ScriptedModel(
        [tool_use_response(bash("echo first; sleep 0.2; echo second")), text_response("k")]
    )
    async with Session(LocalBackend(), model=model) as session:
        events = await collect(session.stream("go"))
    chunks = [e.text for e in events if e.kind == "tool_output"]
    assert chunks == ["first\n", "second\n"]


async def test_output_flood_is_capped_head_and_tail() -> None:
    command = "head -c 50000000 /dev/zero | tr '\\0' 'x'; echo; echo THE-END"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(LocalBackend(output_limit=1000), model=model) as session:
        events = await collect(session.stream("go"))
    (finished,) = [e for e in events if e.kind == "tool_finished"]
    assert finished.output.startswith("x" * 500)
    assert finished.output.endswith("THE-END\n")
    assert "characters cut" in finished.output
    assert len(finished.output) < 1100
    streamed = sum(len(e.text) for e in events if e.kind == "tool_output")
    assert streamed == 500


async def test_parent_secrets_do_not_reach_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    backend = LocalBackend(env={"MY_SETTING": "given"})
    (record,) = await run_tools(backend, bash("env"))
    assert "sk-ant-secret" not in record.output
    assert "aws-secret" not in record.output
    assert "MY_SETTING=given" in record.output
    assert "PATH=" in record.output


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    command = f"sleep 60 & echo $! > {pidfile}; echo started; wait"
    (record,) = await run_tools(LocalBackend(workdir=tmp_path), bash(command), tool_timeout=1)
    assert record.is_error
    assert "timed out" in record.output
    child = int(pidfile.read_text())
    assert await gone(child)


async def test_cancellation_mid_command_leaves_no_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    command = f"sleep 60 & echo $! > {pidfile}; wait"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(LocalBackend(workdir=tmp_path), model=model) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "go")
            child = int(await wait_for_file(pidfile))
            assert process_alive(child)
            tg.cancel_scope.cancel()
        assert await gone(child)
        result = session.history[-1].content[0]  # type: ignore[index]
        assert result.is_error is True  # type: ignore[union-attr]


async def test_temporary_workdir_is_removed_on_close() -> None:
    backend = LocalBackend()
    async with Session(backend, model=ScriptedModel([])):
        workdir = backend.workdir
        assert workdir.is_dir()
    assert not workdir.exists()


async def test_keep_workdir_keeps_it() -> None:
    backend = LocalBackend(keep_workdir=True)
    async with Session(backend, model=ScriptedModel([])):
        workdir = backend.workdir
    assert workdir.is_dir()
    shutil.rmtree(workdir)


async def test_create_view_and_str_replace(tmp_path: Path) -> None:
    create = tool_call(
        "create_file",
        {"path": "notes/a.txt", "file_text": "alpha\nbeta\ngamma\n", "description": "d"},
    )
    replace = tool_call(
        "str_replace",
        {"path": "notes/a.txt", "old_str": "beta", "new_str": "BETA", "description": "d"},
    )
    view = tool_call("view", {"path": "notes/a.txt", "view_range": [2, -1]})
    model = ScriptedModel(
        [
            tool_use_response(create),
            tool_use_response(replace),
            tool_use_response(view),
            text_response("k"),
        ]
    )
    async with Session(LocalBackend(workdir=tmp_path), model=model) as session:
        reply = await session.chat("go")
        files = session.files
    assert [c.output for c in reply.tool_calls] == [
        f"Created {tmp_path.resolve()}/notes/a.txt",
        f"Replaced 1 occurrence in {tmp_path.resolve()}/notes/a.txt",
        "     2\tBETA\n     3\tgamma\n",
    ]
    assert [(f.name, f.source) for f in files] == [("a.txt", "local")]


async def test_str_replace_needs_exactly_one_match(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x x\n")
    records = await run_tools(
        LocalBackend(workdir=tmp_path),
        tool_call(
            "str_replace", {"path": "f.txt", "old_str": "x", "new_str": "y", "description": "d"}
        ),
        tool_call(
            "str_replace", {"path": "f.txt", "old_str": "z", "new_str": "y", "description": "d"}
        ),
    )
    assert [r.is_error for r in records] == [True, True]
    assert "occurs 2 times" in records[0].output
    assert "was not found" in records[1].output
    assert (tmp_path / "f.txt").read_text() == "x x\n"


async def test_view_lists_a_directory_two_levels_deep(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "top.txt").write_text("t")
    (record,) = await run_tools(LocalBackend(workdir=tmp_path), tool_call("view", {"path": "."}))
    assert record.output == f"{tmp_path.resolve()}/\n  a/\n    b/\n  top.txt"


@pytest.mark.parametrize(
    "path",
    ["../outside.txt", "/etc/passwd", "link/passwd", "escape.txt"],
    ids=["dotdot", "absolute", "symlinked-dir", "symlinked-file"],
)
async def test_path_escapes_are_refused(tmp_path: Path, path: str) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (workdir / "link").symlink_to("/etc")
    (workdir / "escape.txt").symlink_to(tmp_path / "outside.txt")
    records = await run_tools(
        LocalBackend(workdir=workdir),
        tool_call("view", {"path": path}),
        tool_call("create_file", {"path": path, "file_text": "x", "description": "d"}),
    )
    for record in records:
        assert record.is_error
        assert "outside the allowed folders" in record.output
    assert (tmp_path / "outside.txt").read_text() == "secret"


async def test_skill_folders_are_readable_but_read_only(skills: list[Any]) -> None:
    skill_md = skills[0].path.resolve() / "SKILL.md"
    before = skill_md.read_text()
    records = await run_tools(
        LocalBackend(skills),
        tool_call("view", {"path": str(skill_md)}),
        tool_call("create_file", {"path": str(skill_md), "file_text": "x", "description": "d"}),
    )
    assert not records[0].is_error
    assert "name:" in records[0].output
    assert records[1].is_error
    assert "read-only" in records[1].output
    assert skill_md.read_text() == before


async def test_system_prompt_lists_skills_with_host_paths(skills: list[Any]) -> None:
    backend = LocalBackend(skills)
    async with Session(backend, model=ScriptedModel([])) as session:
        prompt = session.system_prompt or ""
        workdir = backend.workdir
    for skill in skills:
        assert f"<location>{skill.path.resolve()}/SKILL.md</location>" in prompt
    assert f"Your working directory is {workdir}" in prompt


async def test_tool_subset_with_only() -> None:
    async with Session(LocalBackend(only=["view"]), model=ScriptedModel([])) as session:
        assert [t["name"] for t in session.tools] == ["view"]


async def test_unsandboxed_warning_is_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog

    import conjure_async.backends._localdirs as local_module

    monkeypatch.setattr(structlog, "is_configured", lambda: False)  # the stdlib route
    local_module._warned_unsandboxed = False
    with caplog.at_level("WARNING", logger="conjure_async"):
        for _ in range(2):
            async with Session(LocalBackend(), model=ScriptedModel([])):
                pass
    warnings = [r for r in caplog.records if "local.unsandboxed" in r.getMessage()]
    assert len(warnings) == 1


async def test_bwrap_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        async with Session(LocalBackend(sandbox="bwrap"), model=ScriptedModel([])):
            pass


@pytest.mark.usefixtures("bwrap")
async def test_bwrap_sandbox_confines_commands(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = (
        "touch /etc/conjure-test 2>/dev/null && echo root-writable || echo root-readonly; "
        "echo data > inside.txt && echo workdir-writable; "
        "echo $$; "
        "python3 -c 'import socket; s=socket.socket(); s.settimeout(1); "
        's.connect(("1.1.1.1", 80))\' 2>/dev/null && echo net || echo no-net'
    )
    (record,) = await run_tools(LocalBackend(workdir=workdir, sandbox="bwrap"), bash(command))
    lines = record.output.splitlines()
    assert lines[0] == "root-readonly"
    assert lines[1] == "workdir-writable"
    assert int(lines[2]) < 10  # its own PID namespace
    assert lines[3] == "no-net"
    assert (workdir / "inside.txt").read_text() == "data\n"
