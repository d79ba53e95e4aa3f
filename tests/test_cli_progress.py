"""``conjure`` shows progress on a terminal (a real pty) and stays quiet through pipes.

The image builds talk to a fake Docker engine on 127.0.0.1; the chat's file
download talks to the fake Anthropic server. Progress is what the command
adds for a person; piped output is exactly the lines it prints.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async.testing import FakeAnthropicServer
from tests.support.fake_docker import fake_docker_engine

pytestmark = pytest.mark.anyio

TAG = "conjure-progress-test:latest"
BUILD_LINES = [
    {"stream": "Step 1/2 : FROM python:3.12-slim\n"},
    {"stream": "Step 2/2 : RUN true\n"},
    {"stream": "Successfully tagged conjure-progress-test:latest\n"},
]
_CLEARED = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "DOCKER_HOST",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "COLUMNS",
)


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return {**base, "TERM": "xterm-256color", **extra}


def _read_until_closed(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:  # EIO: the child closed the terminal
            if exc.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def on_a_terminal(*args: str, **env: str) -> tuple[int, str]:
    """Run ``conjure ARGS`` with stdin, stdout and stderr on a pty; return (code, screen bytes)."""
    master, slave = os.openpty()
    try:
        process = await anyio.open_process(
            [sys.executable, "-m", "conjure_async", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_env(**env),
        )
        os.close(slave)
        slave = -1
        async with process:
            output = await anyio.to_thread.run_sync(_read_until_closed, master)
            code = await process.wait()
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    return code, output.decode("utf-8", "replace")


async def through_pipes(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``conjure ARGS`` with pipes, as a script or a log collector would."""
    result = await anyio.run_process(
        [sys.executable, "-m", "conjure_async", *args], env=_env(**env), check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


async def test_an_online_build_shows_progress_on_a_terminal() -> None:
    """On a pty: a spinner naming the build, the build's lines, then ``built TAG``."""
    async with fake_docker_engine(BUILD_LINES) as engine:
        code, screen = await on_a_terminal("docker", "build", "--tag", TAG, DOCKER_HOST=engine.host)
    assert code == 0, screen
    assert f"building {TAG}" in screen
    assert "\x1b[" in screen  # the spinner is drawn and erased with terminal escapes
    assert "Step 2/2 : RUN true" in screen
    assert f"built {TAG}" in screen


async def test_an_online_build_through_pipes_prints_only_its_lines() -> None:
    """Not a terminal: the build's lines and ``built TAG``, no spinner, nothing on stderr."""
    async with fake_docker_engine(BUILD_LINES) as engine:
        result = await through_pipes("docker", "build", "--tag", TAG, DOCKER_HOST=engine.host)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Step 1/2 : FROM python:3.12-slim\n"
        "Step 2/2 : RUN true\n"
        f"Successfully tagged {TAG}\n"
        f"built {TAG}\n"
    )
    assert result.stderr == ""


async def test_an_offline_build_shows_progress_on_a_terminal() -> None:
    """On a pty, the offline build (packing this host's files) shows a spinner until done."""
    async with fake_docker_engine() as engine:
        code, screen = await on_a_terminal(
            "docker", "build", "--offline", "--tag", TAG, DOCKER_HOST=engine.host
        )
        requests = list(engine.requests)
    assert code == 0, screen
    assert f"building {TAG} from this host's bash, python and tools" in screen
    assert f"built {TAG}" in screen
    assert requests[-1] == "POST /v1.43/images/create"


def _creates_a_file(server: FakeAnthropicServer) -> Any:
    """One hosted response: code execution creates ``budget.xlsx``, then a sentence."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        del body
        file_id = server.add_file(b"PK\x03\x04 workbook", "budget.xlsx")
        return {
            "content": [
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "bash_code_execution",
                    "input": {"command": "python3 make.py"},
                },
                {
                    "type": "bash_code_execution_tool_result",
                    "tool_use_id": "srvtoolu_1",
                    "content": {
                        "type": "bash_code_execution_result",
                        "stdout": "saved\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [{"type": "bash_code_execution_output", "file_id": file_id}],
                    },
                },
                {"type": "text", "text": "The workbook is ready."},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    return answer


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipes"])
async def test_chat_saves_the_created_files_with_progress_only_on_a_terminal(
    terminal: bool, tmp_path: Path
) -> None:
    """``chat --output-dir``: the file is saved; a download spinner only on a terminal."""
    out = tmp_path / "out"
    async with FakeAnthropicServer() as server:
        server.queue(_creates_a_file(server))
        args = ("chat", "--backend", "anthropic", "--output-dir", str(out), "make a budget")
        env = {"ANTHROPIC_API_KEY": "sk-ant-progress", "ANTHROPIC_BASE_URL": server.base_url}
        if terminal:
            code, output = await on_a_terminal(*args, **env)
        else:
            result = await through_pipes(*args, **env)
            code, output = result.returncode, result.stdout
            assert result.stderr == ""
    assert code == 0, output
    assert (out / "budget.xlsx").read_bytes() == b"PK\x03\x04 workbook"
    assert f"[file] saved {out / 'budget.xlsx'}" in output
    if terminal:
        assert "downloading budget.xlsx (1 of 1)" in output
        assert "opening the anthropic backend" in output
    else:
        assert "\x1b[" not in output
        assert "downloading" not in output
