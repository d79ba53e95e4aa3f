"""Hostile inputs and faults for the Docker backend (issue #10), against a real engine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from conjure_async import Session
from conjure_async._exceptions import DockerError
from conjure_async.backends import DockerBackend, WarmPool
from conjure_async.events import CreatedFile
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.docker.engine import Engine
from tests.docker.helpers import bash, chat, is_running, processes, script

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

MakeBackend = Callable[..., DockerBackend]


# -- item 11: the workspace is writable on any image -------------------------------


async def test_workspace_is_writable_on_an_image_without_one(
    make_backend: MakeBackend, bare_image: str
) -> None:
    """An image with no /workspace (a stock image) gets a workspace the user can write."""
    reply = await chat(
        make_backend(image=bare_image),
        bash("echo hi > a.txt && cat a.txt && id -u"),
        tool_call("create_file", {"path": "b.txt", "file_text": "b", "description": "d"}),
        bash("mkdir -p sub/deeper && python3 -c \"open('sub/deeper/c.txt', 'w').write('c')\""),
    )
    assert [(c.output, c.is_error) for c in reply.tool_calls] == [
        ("hi\n65534\n", False),
        ("Created /workspace/b.txt", False),
        ("(no output)", False),
    ]


async def test_pooled_container_of_an_image_without_workspace_is_writable(
    make_backend: MakeBackend, bare_image: str, docker_engine: Engine
) -> None:
    """A warm-pool container is prepared when the pool starts it, so it is writable too."""
    async with WarmPool(size=1, docker_host=docker_engine.host) as pool:
        backend = make_backend(image=bare_image, pool=pool)
        await pool.prewarm(backend)
        reply = await chat(backend, bash("echo pooled > p.txt && cat p.txt"))
    assert backend.from_pool
    assert (reply.tool_calls[0].output, reply.tool_calls[0].is_error) == ("pooled\n", False)


async def test_a_workspace_the_user_cannot_write_fails_clearly_at_start(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    """Another user's image directory, or a host directory, raises naming the user and path."""
    with pytest.raises(DockerError, match=r"/workspace is not writable by the container user "):
        await chat(make_backend(user="1000:1000"), bash("true"))
    read_only_dir = tmp_path / "ro"
    read_only_dir.mkdir(mode=0o755)
    with pytest.raises(DockerError, match=r"not writable by the container user '65534:65534'"):
        await chat(make_backend(workspace=read_only_dir), bash("true"))


# -- item 12: the kill does not depend on the image's /tmp, and is verified ---------


async def test_timeout_kills_the_command_when_tmp_is_not_writable(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    """With a read-only /tmp the timeout still stops the command, and says so truthfully."""
    backend = make_backend(tmpfs={})
    model = script(bash("touch /tmp/x"), bash("sleep 301"))
    async with Session(backend, model=model, tool_timeout=1) as s:
        reply = await s.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "sleep 301")
    assert "Read-only file system" in reply.tool_calls[0].output
    assert reply.tool_calls[1].is_error
    assert "the tool was stopped" in reply.tool_calls[1].output
    assert left == []


UNKILLABLE = (
    "python3 -c 'import os, time\n"
    "os.setgid(1000); os.setuid(1000)\n"
    'print("dropped", flush=True)\n'
    "time.sleep(301)'"
)
"""A process the container's user (root without CAP_KILL) cannot kill."""


async def test_a_command_that_cannot_be_stopped_is_never_reported_stopped(
    make_backend: MakeBackend, docker_engine: Engine, bare_image: str
) -> None:
    """A timed-out call whose process survives SIGKILL raises; the container is stopped."""
    backend = make_backend(image=bare_image, user="0:0", cap_add=["SETUID", "SETGID"])
    async with Session(backend, model=script(bash(UNKILLABLE)), tool_timeout=3) as session:
        with pytest.raises(DockerError, match="could not be stopped") as caught:
            await session.chat("go")
        assert backend.container_id is not None
        running = await is_running(docker_engine, backend.container_id)
    assert "still running after SIGKILL: " in str(caught.value)
    assert "(python3)" in str(caught.value)
    assert "the container was killed so that nothing keeps running" in str(caught.value)
    assert not running


async def test_a_cancelled_command_that_cannot_be_stopped_stops_the_container(
    make_backend: MakeBackend, docker_engine: Engine, bare_image: str
) -> None:
    """Cancelling such a call leaves nothing running either: the container is stopped."""
    backend = make_backend(image=bare_image, user="0:0", cap_add=["SETUID", "SETGID"])
    async with Session(backend, model=script(bash(UNKILLABLE))) as session:
        with anyio.CancelScope() as scope:
            async for event in session.stream("go"):
                if event.kind == "tool_output" and "dropped" in event.text:
                    scope.cancel()
        assert backend.container_id is not None
        running = await is_running(docker_engine, backend.container_id)
    assert scope.cancelled_caught
    assert not running


async def test_a_background_process_that_survives_is_reported(
    make_backend: MakeBackend, docker_engine: Engine, bare_image: str
) -> None:
    """A leftover the end-of-command sweep cannot kill is named in the result, not hidden."""
    ready = UNKILLABLE.replace("print(", 'open("/tmp/ready", "w"); print(')
    command = f"{ready} >/dev/null & while [ ! -e /tmp/ready ]; do sleep 0.05; done; echo started"
    backend = make_backend(image=bare_image, user="0:0", cap_add=["SETUID", "SETGID"])
    async with Session(backend, model=script(bash(command))) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "time.sleep(301)")
    assert reply.tool_calls[0].output == (
        "started\n\n[1 process(es) this command started could not be stopped and still run]"
    )
    assert len(left) == 1


# -- item 13 and 7: the command as bash -c sees it, whatever its length ---------------


async def test_errors_name_bash_and_the_commands_own_line_numbers(
    make_backend: MakeBackend,
) -> None:
    """`echo one; nosuchcmd` on two lines reports `bash: line 2`, $0 is bash, $LINENO true."""
    reply = await chat(
        make_backend(),
        bash("echo one >&2\nnosuchcmd"),
        bash("true\n\necho $0 $LINENO $#"),
    )
    assert reply.tool_calls[0].output == (
        "one\nbash: line 2: nosuchcmd: command not found\n\n[exit code 127]"
    )
    assert reply.tool_calls[1].output == "bash 3 0\n"


@pytest.mark.parametrize("length", [131_072, 300_000])
async def test_a_command_beyond_the_argument_limit_runs(
    make_backend: MakeBackend, length: int
) -> None:
    """A command of 128 KiB or more (one argv string's limit) runs like any other."""
    head = "echo done; : '"
    command = head + "x" * (length - len(head) - 1) + "'"
    assert len(command) == length
    reply = await chat(make_backend(), bash(command))
    assert (reply.tool_calls[0].output, reply.tool_calls[0].is_error) == ("done\n", False)


async def test_a_command_with_a_nul_character_is_an_error_result(
    make_backend: MakeBackend,
) -> None:
    """A command bash cannot receive is the model's error result, not an exception."""
    reply = await chat(make_backend(), bash("echo a\x00b"), bash("echo next"))
    assert [(c.output, c.is_error) for c in reply.tool_calls] == [
        ("bash_tool's command must not contain NUL characters", True),
        ("next\n", False),
    ]


# -- items 6 and 8: whatever a command started ends with it ---------------------------

DOUBLE_FORK = (
    "python3 -c 'import os\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    '        os.execvp("sleep", ["sleep", "1205"])\n'
    "    os._exit(0)\n"
    "os.wait()'"
)


async def test_detached_processes_die_when_their_command_ends(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    """setsid, a double fork with setsid, and `env -i setsid` do not outlive the call."""
    backend = make_backend()
    model = script(
        bash("setsid sleep 1204 >/dev/null 2>&1 </dev/null & sleep 0.3"),
        bash(DOUBLE_FORK),
        bash("env -i setsid sleep 1206 >/dev/null 2>&1 </dev/null & sleep 0.3"),
        bash("nohup sleep 1207 >/dev/null 2>&1 & disown; echo detached"),
    )
    async with Session(backend, model=model) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "sleep 120")
    assert [c.is_error for c in reply.tool_calls] == [False] * 4
    assert left == []


async def test_a_detached_process_holding_stdout_ends_with_the_call(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    """`setsid sleep 1208 & echo started` returns when the shell exits; the sleep is gone."""
    backend = make_backend()
    model = script(bash("setsid sleep 1208 & echo started"))
    async with Session(backend, model=model, tool_timeout=20) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "sleep 1208")
    assert (reply.tool_calls[0].output, reply.tool_calls[0].is_error) == ("started\n", False)
    assert left == []


async def test_a_command_that_kills_its_wrapper_still_leaves_nothing(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    """Killing the backend's wrapper (the command's parent) does not save a detached process."""
    backend = make_backend()
    command = "setsid sleep 1212 >/dev/null 2>&1 </dev/null & sleep 0.3; kill -9 $PPID; sleep 1213"
    async with Session(backend, model=script(bash(command), bash("echo next"))) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "sleep 121")
    assert (reply.tool_calls[0].is_error, reply.tool_calls[0].exit_code) == (True, 137)
    assert reply.tool_calls[1].output == "next\n"
    assert left == []


async def test_concurrent_calls_do_not_kill_each_others_processes(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    """A call ending sweeps its own processes but spares a running call's, detached or not."""
    first = (
        "setsid sleep 1209 >/dev/null 2>&1 </dev/null & echo $! > a.pid\n"
        "sleep 1210 & echo $! > a2.pid; touch a.ready\n"
        "while [ ! -e b.done ]; do sleep 0.05; done\n"
        "while kill -0 $(cat b.pid) 2>/dev/null; do sleep 0.05; done\n"
        "kill -0 $(cat a.pid) && kill -0 $(cat a2.pid) && echo mine-alive"
    )
    second = (
        "while [ ! -e a.ready ]; do sleep 0.05; done\n"
        "setsid sleep 1211 >/dev/null 2>&1 </dev/null & echo $! > b.pid; touch b.done"
    )
    backend = make_backend()
    model = ScriptedModel([tool_use_response(bash(first), bash(second)), text_response("done")])
    async with Session(backend, model=model, tool_timeout=60) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await processes(docker_engine, backend.container_id, "sleep 12")
    assert [(c.output, c.is_error) for c in reply.tool_calls] == [
        ("mine-alive\n", False),
        ("(no output)", False),
    ]
    assert left == []


# -- item 4: files from bash carry their size and the call ----------------------------


async def test_files_from_bash_carry_their_size_and_the_call_id(
    make_backend: MakeBackend,
) -> None:
    """A file a command wrote is reported with its size and the tool_use id."""
    call = bash("printf 12345 > five.txt; mkdir -p d; printf '' > d/empty")
    reply = await chat(make_backend(), call)
    assert sorted((f.path, f.size_bytes, f.tool_use_id) for f in reply.files) == [
        ("/workspace/d/empty", 0, call["id"]),
        ("/workspace/five.txt", 5, call["id"]),
    ]


async def test_edits_are_reported_with_their_new_size(make_backend: MakeBackend) -> None:
    """create_file then str_replace: session.files shows the edited size, not the first."""
    backend = make_backend()
    model = script(
        tool_call("create_file", {"path": "grow.txt", "file_text": "a", "description": "d"}),
        tool_call(
            "str_replace",
            {"path": "grow.txt", "old_str": "a", "new_str": "a" * 21, "description": "d"},
        ),
    )
    async with Session(backend, model=model) as session:
        await session.chat("go")
        files = session.files
    assert [(f.path, f.size_bytes) for f in files] == [("/workspace/grow.txt", 21)]


# -- item 29: files come out of the container through session.download ---------------


@pytest.mark.parametrize("workspace", ["volume", "tmpfs"])
async def test_download_copies_files_out_of_the_container(
    make_backend: MakeBackend, tmp_path: Path, workspace: str
) -> None:
    """Binary and text files, from bash and from create_file, arrive byte for byte."""
    model = script(
        bash("head -c 300000 /dev/urandom > data.bin && sha256sum data.bin"),
        tool_call("create_file", {"path": "notes.txt", "file_text": "é\n", "description": "d"}),
    )
    async with Session(make_backend(workspace=workspace), model=model) as session:
        reply = await session.chat("go")
        paths = [await session.download(f, tmp_path / "out") for f in reply.files]
    digest = reply.tool_calls[0].output.split()[0]
    assert [p.name for p in paths] == ["data.bin", "notes.txt"]
    assert hashlib.sha256(paths[0].read_bytes()).hexdigest() == digest
    assert paths[1].read_text() == "é\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.bin", "notes.txt"]


def docker_file(path: str, name: str | None = None) -> CreatedFile:
    return CreatedFile(name=name or path.rsplit("/", 1)[-1], source="docker", path=path)


async def test_download_refuses_links_other_files_and_paths_outside(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    """Links, FIFOs, directories and paths outside the workspace are refused; nothing is left."""
    setup = bash(
        "ln -s /etc/passwd link; ln -s /etc etc; mkdir dir; echo twelve bytes > big.txt; "
        "ln -s big.txt inner-link; python3 -c 'import os; os.mkfifo(\"fifo\")'"
    )
    cases = {
        "/workspace/link": "is a symbolic link",
        "/workspace/inner-link": "is a symbolic link",
        "/workspace/etc/passwd": "resolves outside the workspace",
        "/workspace/fifo": "is not a regular file",
        "/workspace/dir": "is not a regular file",
        "/etc/passwd": "only files in the workspace",
        "/workspace/../etc/passwd": "only files in the workspace",
        "relative.txt": "only files in the workspace",
        "/workspace/big.txt": "too large to download",
    }
    out = tmp_path / "out"
    out.mkdir()
    async with Session(make_backend(download_limit=10), model=script(setup)) as session:
        await session.chat("go")
        for path, message in cases.items():
            with pytest.raises(DockerError, match=message):
                await session.download(docker_file(path), out)
        with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
            await session.download(docker_file("/workspace/missing.txt"), out)
    assert list(out.iterdir()) == []


async def test_download_keeps_existing_files_and_safe_names(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    """An existing target is kept unless overwrite=True; a hostile name stays in the folder."""
    (tmp_path / "a.txt").write_text("mine")
    async with Session(make_backend(), model=script(bash("echo new > a.txt"))) as session:
        reply = await session.chat("go")
        with pytest.raises(FileExistsError, match="overwrite=True"):
            await session.download(reply.files[0], tmp_path)
        kept = (tmp_path / "a.txt").read_text()
        replaced = await session.download(reply.files[0], tmp_path, overwrite=True)
        renamed = await session.download(
            docker_file("/workspace/a.txt", name="../../evil.txt"), tmp_path / "sub"
        )
    assert kept == "mine"
    assert replaced.read_text() == "new\n"
    assert renamed == tmp_path / "sub" / "evil.txt"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "evil.txt", "sub"]


async def test_download_without_a_container_is_file_not_found(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    """A session that never started its container (e.g. restored) has no files to give."""
    async with Session(make_backend(), model=ScriptedModel([])) as session:
        with pytest.raises(FileNotFoundError, match="no container"):
            await session.download(docker_file("/workspace/a.txt"), tmp_path)
