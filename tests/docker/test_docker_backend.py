"""The Docker backend against a real engine (see conftest.py for how it is had)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from conjure_async import Session
from conjure_async._exceptions import ContainerDiedError, ImageNotFoundError
from conjure_async.backends import DockerBackend, WarmPool
from conjure_async.backends.docker._api import (
    CREATED_BY,
    LABEL_CREATED_BY,
    LABEL_OWNER,
    LABEL_SESSION,
    docker_client,
)
from conjure_async.backends.docker._sweep import sweep_orphans
from conjure_async.testing import (
    DEFAULT_IGNORED,
    ScriptedModel,
    assert_events,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.docker.engine import Engine
from tests.docker.helpers import bash, chat, container_exists, script, sleeping

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

MakeBackend = Callable[..., DockerBackend]
OUTSIDE = "is outside the allowed folders (the working directory /workspace and the skill folders)"


async def test_multi_turn_session_reuses_one_container(make_backend: MakeBackend) -> None:
    backend = make_backend()
    model = ScriptedModel(
        [
            tool_use_response(bash("hostname")),
            text_response("first"),
            tool_use_response(bash("hostname")),
            text_response("second"),
        ]
    )
    async with Session(backend, model=model) as session:
        first = await session.chat("one")
        container = backend.container_id
        second = await session.chat("two")
        assert backend.container_id == container
    assert first.tool_calls[0].output == second.tool_calls[0].output
    assert container is not None
    assert first.tool_calls[0].output.strip() == container[:12]


async def test_container_removed_on_close(make_backend: MakeBackend, docker_engine: Engine) -> None:
    backend = make_backend()
    await chat(backend, bash("true"))
    assert backend.dump_state()["container_id"] is not None
    assert not await container_exists(docker_engine, backend.dump_state()["container_id"])


async def test_no_container_before_first_tool_call(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    backend = make_backend()
    async with Session(backend, model=ScriptedModel([text_response("hi")])) as session:
        await session.chat("hello")
        assert backend.container_id is None


async def test_system_prompt_shows_container_paths(make_backend: MakeBackend) -> None:
    backend = make_backend()
    async with Session(backend, model=ScriptedModel([])) as session:
        prompt = session.system_prompt or ""
    assert "<location>/mnt/skills/demo/SKILL.md</location>" in prompt
    assert "Your working directory is /workspace" in prompt
    assert str(backend.skills[0].path) not in prompt


async def test_bash_streams_output_and_reports_exit_code(make_backend: MakeBackend) -> None:
    async with Session(make_backend(), model=script(bash("echo out; exit 3"))) as s:
        events = await collect(s.stream("go"))
    assert_events(
        events,
        [
            "tool_started bash_tool",
            {"kind": "tool_output", "stream": "stdout", "text": "out\n"},
            {
                "kind": "tool_finished",
                "is_error": True,
                "exit_code": 3,
                "output": "out\n\n[exit code 3]",
            },
            "turn_finished end_turn",
        ],
        ignore=DEFAULT_IGNORED - {"tool_output"},
    )


async def test_bash_streams_stderr_as_stderr(make_backend: MakeBackend) -> None:
    async with Session(make_backend(), model=script(bash("echo err >&2"))) as s:
        events = await collect(s.stream("go"))
    outputs = [(e.stream, e.text) for e in events if e.kind == "tool_output"]
    assert outputs == [("stderr", "err\n")]


async def test_file_tools_work_on_container_paths(make_backend: MakeBackend) -> None:
    reply = await chat(
        make_backend(),
        tool_call("view", {"path": "/mnt/skills/demo/scripts/hello.py"}),
        tool_call(
            "create_file",
            {"path": "notes.txt", "file_text": "a 'quoted' $(x) `y`\n", "description": "d"},
        ),
        tool_call(
            "str_replace",
            {
                "path": "/workspace/notes.txt",
                "old_str": "quoted",
                "new_str": "replaced",
                "description": "d",
            },
        ),
        tool_call("view", {"path": "/workspace/notes.txt"}),
        bash("python3 /mnt/skills/demo/scripts/hello.py"),
    )
    assert [(c.output, c.is_error) for c in reply.tool_calls] == [
        ("     1\tprint('hello from the skill')\n", False),
        ("Created /workspace/notes.txt", False),
        ("Replaced 1 occurrence in /workspace/notes.txt", False),
        ("     1\ta 'replaced' $(x) `y`\n", False),
        ("hello from the skill\n", False),
    ]
    assert [(f.name, f.path, f.source) for f in reply.files] == [
        ("notes.txt", "/workspace/notes.txt", "docker")
    ]


async def test_file_tools_refuse_paths_outside_the_allowed_folders(
    make_backend: MakeBackend,
) -> None:
    reply = await chat(
        make_backend(),
        tool_call("view", {"path": "/etc/passwd"}),
        bash("ln -s /etc /workspace/etc-link"),
        tool_call("view", {"path": "etc-link/passwd"}),
        tool_call(
            "str_replace",
            {"path": "missing.txt", "old_str": "a", "new_str": "b", "description": "d"},
        ),
    )
    assert [(c.output, c.is_error) for c in reply.tool_calls] == [
        (f"/etc/passwd {OUTSIDE}", True),
        ("(no output)", False),
        (f"etc-link/passwd {OUTSIDE}", True),
        ("/workspace/missing.txt is not a file", True),
    ]


async def test_skills_are_read_only_for_commands(make_backend: MakeBackend) -> None:
    reply = await chat(make_backend(), bash("touch /mnt/skills/demo/new"))
    assert reply.tool_calls[0].is_error
    assert "Read-only file system" in reply.tool_calls[0].output


async def test_skills_are_read_only_for_file_tools(make_backend: MakeBackend) -> None:
    reply = await chat(
        make_backend(),
        tool_call(
            "create_file", {"path": "/mnt/skills/demo/new", "file_text": "x", "description": "d"}
        ),
    )
    assert (reply.tool_calls[0].output, reply.tool_calls[0].is_error) == (
        "/mnt/skills/demo/new is inside a skill folder, which is read-only",
        True,
    )


async def test_secure_defaults(make_backend: MakeBackend) -> None:
    command = (
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
        "touch /etc/x 2>&1 | sed 's/.*: //'; touch /tmp/x && echo tmp-writable"
    )
    reply = await chat(make_backend(), bash(command))
    assert reply.tool_calls[0].output.split("\n") == [
        "65534",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Read-only file system",
        "tmp-writable",
        "",
    ]


async def test_no_network_by_default(make_backend: MakeBackend) -> None:
    command = "python3 -c 'import socket; print(sorted(n for _, n in socket.if_nameindex()))'"
    reply = await chat(make_backend(), bash(command))
    assert reply.tool_calls[0].output == "['lo']\n"


async def test_output_is_capped(make_backend: MakeBackend) -> None:
    reply = await chat(
        make_backend(output_limit=1000), bash("head -c 100000 /dev/zero | tr '\\0' a")
    )
    output = reply.tool_calls[0].output
    assert "[... 99000 characters cut ...]" in output
    assert len(output) < 1100


async def test_timeout_kills_the_command(make_backend: MakeBackend, docker_engine: Engine) -> None:
    backend = make_backend()
    model = script(bash("sleep 301"))
    async with Session(backend, model=model, tool_timeout=1) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await sleeping(docker_engine, backend.container_id)
    assert reply.tool_calls[0].is_error
    assert "timed out" in reply.tool_calls[0].output
    assert left == []


async def test_background_processes_end_with_the_command(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    backend = make_backend()
    async with Session(backend, model=script(bash("sleep 301 & echo started"))) as session:
        reply = await session.chat("go")
        assert backend.container_id is not None
        left = await sleeping(docker_engine, backend.container_id)
    assert reply.tool_calls[0].output == "started\n"
    assert left == []


async def test_cancellation_kills_the_exec_then_close_removes_the_container(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    backend = make_backend()
    async with Session(backend, model=script(bash("echo started; sleep 301"))) as session:
        with anyio.CancelScope() as scope:
            async for event in session.stream("go"):
                if event.kind == "tool_output":
                    scope.cancel()
        assert scope.cancelled_caught
        container = backend.container_id
        assert container is not None
        left = await sleeping(docker_engine, container)
    assert left == []
    assert not await container_exists(docker_engine, container)


async def test_out_of_memory_is_reported_as_an_error(make_backend: MakeBackend) -> None:
    command = "python3 -c 'b = bytearray(300 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096])'"
    reply = await chat(make_backend(memory="64m"), bash(command))
    call = reply.tool_calls[0]
    assert (call.is_error, call.exit_code) == (True, 137)
    assert "[killed: the container ran out of memory (64 MiB)]" in call.output


async def test_pids_limit_is_reported_as_an_error(make_backend: MakeBackend) -> None:
    command = (
        "python3 -c 'import os, time\n"
        "for _ in range(100):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30); os._exit(0)\n'"
    )
    reply = await chat(make_backend(pids_limit=32), bash(command), bash("ps -e | wc -l"))
    call = reply.tool_calls[0]
    assert (call.is_error, call.exit_code) == (True, 1)
    assert "BlockingIOError" in call.output
    assert "[the container's process limit (32) was reached]" in call.output
    # the leftover children were killed with the command's process group
    assert int(reply.tool_calls[1].output) < 10


async def test_bash_reports_files_it_created(make_backend: MakeBackend) -> None:
    reply = await chat(make_backend(), bash("mkdir -p out && echo x > out/a.txt"), bash("true"))
    assert [(f.path, f.source) for f in reply.files] == [("/workspace/out/a.txt", "docker")]


async def test_a_dead_container_raises_container_died(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    backend = make_backend()
    model = ScriptedModel(
        [
            tool_use_response(bash("true")),
            text_response("one"),
            tool_use_response(bash("true")),
            text_response("two"),
        ]
    )
    async with Session(backend, model=model) as session:
        await session.chat("first")
        assert backend.container_id is not None
        async with docker_client(docker_engine.host) as client:
            await client.containers.container(backend.container_id).kill()
        with pytest.raises(ContainerDiedError, match="exited with code 137") as caught:
            await session.chat("second")
    assert caught.value.oom_killed is False


async def test_host_directory_workspace(make_backend: MakeBackend, tmp_path: Any) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    workspace.chmod(0o777)
    await chat(make_backend(workspace=workspace), bash("echo kept > result.txt"))
    assert (workspace / "result.txt").read_text() == "kept\n"


async def test_warm_pool_hit_path(make_backend: MakeBackend, docker_engine: Engine) -> None:
    async with WarmPool(size=1, docker_host=docker_engine.host) as pool:
        backend = make_backend(pool=pool)
        await pool.prewarm(backend)
        ready = pool.idle
        reply = await chat(backend, bash("echo warm"))
        stats = (pool.hits, pool.misses)
    assert (ready, backend.from_pool, stats) == (1, True, (1, 0))
    assert reply.tool_calls[0].output == "warm\n"


async def test_warm_pool_drained_on_exit(make_backend: MakeBackend, docker_engine: Engine) -> None:
    async with WarmPool(size=2, docker_host=docker_engine.host) as pool:
        await pool.prewarm(make_backend(pool=pool))
        async with docker_client(docker_engine.host) as client:
            pooled = await client.containers.list(filters={"label": ["conjure_async.pool"]})
    assert len(pooled) == 2
    assert [await container_exists(docker_engine, c.id) for c in pooled] == [False, False]


async def test_sweeper_removes_orphans_and_spares_live_containers(
    make_backend: MakeBackend, docker_engine: Engine
) -> None:
    dead_pid = 4_194_305  # above the kernel's PID_MAX_LIMIT: never a live process
    backend = make_backend()
    async with docker_client(docker_engine.host) as client:
        orphan = await client.containers.create(
            {
                "Image": docker_engine.image,
                "Cmd": ["sleep", "infinity"],
                "Labels": {
                    LABEL_CREATED_BY: CREATED_BY,
                    LABEL_SESSION: "crashed",
                    LABEL_OWNER: f"{socket.gethostname()}:{dead_pid}",
                },
                "HostConfig": {"NetworkMode": "none"},
            }
        )
    async with Session(backend, model=script(bash("true"))) as session:
        await session.chat("go")
        removed = await sweep_orphans(docker_engine.host)
        live = backend.container_id
        assert live is not None
        live_exists = await container_exists(docker_engine, live)
    assert removed == [orphan.id]
    assert live_exists


async def test_missing_image_raises_with_the_build_hint(make_backend: MakeBackend) -> None:
    backend = make_backend(image="conjure-async-missing:nope")
    with pytest.raises(ImageNotFoundError, match="conjure docker build"):
        async with Session(backend, model=ScriptedModel([])):
            pass
