"""Local commands: what they leave behind, how they start, what they may touch (#10 items 5-10)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async import SandboxUnavailableError, Session, load_skills
from conjure_async.backends import LocalBackend, _localproc
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.helpers import process_alive

pytestmark = pytest.mark.anyio

MODES = ["auto", "subreaper", "bwrap"]


def bash(command: str) -> dict[str, Any]:
    return tool_call("bash_tool", {"command": command, "description": "test"})


def make_backend(mode: str, request: pytest.FixtureRequest, **options: Any) -> LocalBackend:
    """A backend in one of :data:`MODES` (bwrap needs the sandbox installed)."""
    if mode == "bwrap":
        request.getfixturevalue("bwrap")
        return LocalBackend(sandbox="bwrap", **options)
    if mode == "subreaper":
        return LocalBackend(containment="subreaper", **options)
    return LocalBackend(**options)


def marked(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in argv and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique ``sleep`` duration to find escaped processes by; kills any left at the end."""
    mark = f"1204.{random.randrange(10**6, 10**7)}"
    yield mark
    for pid in marked(mark):
        os.kill(pid, signal.SIGKILL)


def escapes(mark: str) -> dict[str, str]:
    """Commands that detach a ``sleep {mark}`` in different ways."""
    double_fork = (
        "python3 -c 'import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f'        os.execvp("sleep", ["sleep", "{mark}1"])\n'
        "    os._exit(0)\n"
        "os.wait()'"
    )
    return {
        "setsid": f"setsid sleep {mark}0 >/dev/null 2>&1 </dev/null & sleep 0.3",
        "double-fork": f"{double_fork}; sleep 0.3",
        "subshell-setsid-nohup": f"(nohup setsid sleep {mark}2 >/dev/null 2>&1 &); sleep 0.3",
    }


@pytest.mark.parametrize("mode", MODES)
async def test_detached_processes_die_with_their_command(
    mode: str, marker: str, request: pytest.FixtureRequest
) -> None:
    """setsid, a double fork + setsid and nohup: nothing is left once the tool call returns."""
    commands = list(escapes(marker).values())
    model = ScriptedModel([tool_use_response(*(bash(c) for c in commands)), text_response("k")])
    backend = make_backend(mode, request)
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
        survivors = marked(marker)
        cgroup = backend._cgroup_session
    assert [c.is_error for c in reply.tool_calls] == [False] * len(commands)
    assert survivors == []
    assert cgroup is None or not cgroup.exists()  # the session's cgroups are removed at close


@pytest.mark.parametrize("mode", MODES)
async def test_detached_processes_die_when_the_command_times_out(
    mode: str, marker: str, request: pytest.FixtureRequest
) -> None:
    """A timed-out command takes its detached descendants with it."""
    command = f"setsid sleep {marker}0 >/dev/null 2>&1 </dev/null & sleep 300"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(make_backend(mode, request), model=model, tool_timeout=2) as session:
        reply = await session.chat("go")
        survivors = marked(marker)
    assert "timed out" in reply.tool_calls[0].output
    assert survivors == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_background_child_holding_stdout_does_not_hold_the_call(
    mode: str, marker: str, request: pytest.FixtureRequest
) -> None:
    """`sleep & echo started` returns when the shell exits, and the sleep is gone."""
    model = ScriptedModel(
        [tool_use_response(bash(f"sleep {marker} & echo started")), text_response("k")]
    )
    async with Session(make_backend(mode, request), model=model, tool_timeout=20) as session:
        reply = await session.chat("go")
        survivors = marked(marker)
    (call,) = reply.tool_calls
    assert (call.output, call.is_error) == ("started\n", False)
    assert survivors == []


@pytest.mark.parametrize("mode", MODES)
async def test_commands_of_any_length_run_and_keep_their_line_numbers(
    mode: str, request: pytest.FixtureRequest
) -> None:
    """A 200,000-character command runs; errors name the line of the model's own command."""
    long = ": '" + "x" * 200_000 + "'\necho long"
    numbered = "echo one\ntrue\nnosuchcmd-xyz\necho two"
    model = ScriptedModel([tool_use_response(bash(long), bash(numbered)), text_response("k")])
    async with Session(make_backend(mode, request), model=model) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[0].output == "long\n"
    assert reply.tool_calls[1].output == (
        "one\nbash: line 3: nosuchcmd-xyz: command not found\ntwo\n"
    )


async def test_commands_that_cannot_start_are_error_results() -> None:
    """A NUL in the command, or no bash on PATH, is an error result, never an exception."""
    model = ScriptedModel(
        [
            tool_use_response(bash("echo a\x00b")),
            tool_use_response(bash("echo hi")),
            text_response("k"),
        ]
    )
    async with Session(LocalBackend(env={"PATH": "/nonexistent"}), model=model) as session:
        reply = await session.chat("go")
    nul, no_bash = reply.tool_calls
    assert nul.is_error
    assert "NUL" in nul.output
    assert no_bash.is_error
    assert "bash" in no_bash.output


@pytest.mark.parametrize("mode", MODES)
async def test_housekeeping_stays_out_of_the_reported_files(
    mode: str, request: pytest.FixtureRequest
) -> None:
    """Profiles, caches and temp files written under $HOME and $TMPDIR are not reported."""
    command = (
        'mkdir -p "$HOME/.config/libreoffice" "$HOME/.cache/pip" && '
        'echo p > "$HOME/.config/libreoffice/profile.xcu" && echo c > "$HOME/.cache/pip/x" && '
        'echo t > "$TMPDIR/lock" && echo r > result.txt && echo "$HOME" && echo "$TMPDIR"'
    )
    backend = make_backend(mode, request)
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
        workdir = backend.workdir
        files = [f.name for f in session.files]
    home, tmp = reply.tool_calls[0].output.split()
    assert files == ["result.txt"]
    assert not Path(home).is_relative_to(workdir)
    assert not Path(tmp).is_relative_to(workdir)
    assert not Path(home).exists()  # removed at close


@pytest.mark.parametrize(("sandbox", "read_only"), [("none", False), ("bwrap", True)])
async def test_prompt_claims_only_what_is_enforced(
    sandbox: str, read_only: bool, request: pytest.FixtureRequest
) -> None:
    """Without a sandbox the prompt does not call skill folders read-only for commands."""
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    backend = LocalBackend(sandbox=sandbox)  # type: ignore[arg-type]
    async with Session(backend, model=ScriptedModel([])) as session:
        prompt = session.system_prompt or ""
    assert ("read-only" in prompt) is read_only
    assert ("not sandboxed" in prompt) is not read_only


def _skill_with_a_module(root: Path) -> Path:
    skill = root / "pyskill"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: pyskill\ndescription: Imports a helper.\n---\nRun it.\n"
    )
    (skill / "scripts" / "helper.py").write_text("GREETING = 'hello from helper'\n")
    (skill / "scripts" / "main.py").write_text("import helper\nprint(helper.GREETING)\n")
    return skill


@pytest.mark.parametrize("mode", MODES)
async def test_running_skill_scripts_leaves_no_bytecode_in_skill_folders(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A skill script importing a sibling module writes no __pycache__ into the skill folder."""
    skill = _skill_with_a_module(tmp_path)
    backend = make_backend(mode, request, skills=load_skills(tmp_path))
    command = f"{sys.executable} {skill}/scripts/main.py"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[0].output == "hello from helper\n"
    assert list(skill.rglob("__pycache__")) == []


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel of a module named ``conjure_pip_probe``."""
    path = folder / "conjure_pip_probe-1.0-py3-none-any.whl"
    dist = "conjure_pip_probe-1.0.dist-info"
    files = {
        "conjure_pip_probe.py": "VALUE = 42\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: conjure-pip-probe\nVersion: 1.0\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in {**files, f"{dist}/RECORD": record}.items():
            zf.writestr(name, text)
    return path


async def test_pip_install_never_writes_into_the_interpreters_environment(tmp_path: Path) -> None:
    """pip install from a command lands in the session's private home, not the virtualenv."""
    venv = tmp_path / "venv"
    await anyio.run_process(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)]
    )
    wheel = _wheel(tmp_path)
    backend = LocalBackend(env={"PATH": f"{venv}/bin:{os.environ['PATH']}"})
    install = f"python -m pip install -q --no-index --no-deps --no-cache-dir {wheel}"
    probe = "echo \"$HOME\"; python -c 'import conjure_pip_probe as m; print(m.__file__)'"
    model = ScriptedModel(
        [tool_use_response(bash(install)), tool_use_response(bash(probe)), text_response("k")]
    )
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
    installed, imported = reply.tool_calls
    assert list(venv.rglob("conjure_pip_probe*")) == []
    assert not installed.is_error, installed.output
    home, module = imported.output.split()
    assert Path(module).is_relative_to(home)


@pytest.mark.usefixtures("bwrap")
async def test_bwrap_sees_a_virtualenv_under_tmp() -> None:
    """Under bwrap a virtualenv living in /tmp stays visible (read-only) to commands."""
    venv = Path(tempfile.mkdtemp(dir="/tmp", prefix="conjure-test-venv-"))
    try:
        await anyio.run_process([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        (site,) = venv.glob("lib/python*/site-packages")
        (site / "only_in_tmp_venv.py").write_text("WHERE = 'tmp venv'\n")
        backend = LocalBackend(sandbox="bwrap", env={"PATH": f"{venv}/bin:/usr/bin:/bin"})
        command = (
            "python3 -c 'import sys, only_in_tmp_venv as m; print(sys.prefix, m.WHERE)'; "
            f"touch {site}/new 2>/dev/null || echo read-only"
        )
        model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
        async with Session(backend, model=model) as session:
            reply = await session.chat("go")
        assert reply.tool_calls[0].output == f"{venv} tmp venv\nread-only\n"
    finally:
        shutil.rmtree(venv)


@pytest.mark.parametrize("mode", MODES)
async def test_cancellation_stops_detached_processes(
    mode: str, marker: str, request: pytest.FixtureRequest
) -> None:
    """Cancelling chat() mid-command leaves neither the command nor what it detached."""
    command = f"setsid sleep {marker}0 >/dev/null 2>&1 </dev/null & echo up; sleep 300"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(make_backend(mode, request), model=model) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "go")
            with anyio.fail_after(20):
                while not marked(f"{marker}0"):  # noqa: ASYNC110 - polling /proc
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        survivors = marked(marker)
    assert survivors == []


@pytest.mark.parametrize("mode", MODES)
async def test_kill_grace_sends_sigterm_first(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """With kill_grace a timed-out command gets SIGTERM (its trap runs) before SIGKILL."""
    flag = tmp_path / "terminated"
    backend = make_backend(mode, request, workdir=tmp_path, kill_grace=5)
    command = f"trap 'echo term > {flag}; exit 0' TERM; echo up; while :; do sleep 0.05; done"
    model = ScriptedModel([tool_use_response(bash(command)), text_response("k")])
    async with Session(backend, model=model, tool_timeout=2) as session:
        reply = await session.chat("go")
    assert "timed out" in reply.tool_calls[0].output
    assert flag.read_text() == "term\n"


async def test_a_command_removing_the_private_home_does_not_break_the_next() -> None:
    """`rm -rf "$HOME"` in one command; the next command still runs with a home."""
    model = ScriptedModel(
        [
            tool_use_response(bash('rm -rf "$HOME" "$TMPDIR"')),
            tool_use_response(bash('test -d "$HOME" && test -d "$TMPDIR" && echo fine')),
            text_response("k"),
        ]
    )
    async with Session(LocalBackend(), model=model) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[1].output == "fine\n"


async def test_required_cgroup_containment_fails_clearly_where_there_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """containment='cgroup' without a usable cgroup v2 hierarchy: a clear error at open."""
    monkeypatch.setattr(_localproc, "cgroup_base", lambda: None)
    backend = LocalBackend(containment="cgroup")
    with pytest.raises(SandboxUnavailableError, match="cgroup v2"):
        async with Session(backend, model=ScriptedModel([])):
            pass
