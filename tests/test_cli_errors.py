"""``conjure`` turns every library error into one line with a hint and a documented exit code.

Each test runs the real command line (``python -m conjure_async``) against
real parts: a skills path that does not exist, a closed port where the API
should be, the fake Anthropic server refusing a key, a closed port where the
Docker engine should be, and a fake engine that cannot reach a registry.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from conjure_async import __version__
from conjure_async.testing import FakeAnthropicServer, text_response
from tests.support.fake_docker import NO_REGISTRY, fake_docker_engine

pytestmark = pytest.mark.anyio

KEY = "sk-ant-cli-test-key"
_CLEARED = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DOCKER_HOST")


async def conjure(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``conjure ARGS`` in a child process with ``env`` added to a clean environment."""
    import anyio

    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    result = await anyio.run_process(
        [sys.executable, "-m", "conjure_async", *args],
        env={**base, **env},
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Standard error must be exactly one ``conjure: error:`` line with a hint."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("conjure: error: "), line
    assert "; hint: " in line, line
    return line


async def test_a_missing_skills_path_is_one_line_pointing_at_validate() -> None:
    """``chat --skills /nope``: a skill error, exit 1, the hint names ``conjure validate``."""
    result = await conjure("chat", "--skills", "/nope", "hi", ANTHROPIC_API_KEY=KEY)
    line = the_error_line(result)
    assert result.returncode == 1
    assert line.startswith("conjure: error: SkillValidationError: ")
    assert "/nope" in line
    assert line.endswith("; hint: `conjure validate PATH` lists every problem with its file")


async def test_no_network_is_one_line_naming_the_connection() -> None:
    """No API at the address: a model error, exit 3, the hint says what to check."""
    result = await conjure(
        "chat",
        "hi",
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{closed_port()}",
    )
    line = the_error_line(result)
    assert result.returncode == 3
    assert line.startswith("conjure: error: APIConnectionError: ")
    assert line.endswith(
        "; hint: no answer from the Anthropic API: check the network, a proxy, "
        "or ANTHROPIC_BASE_URL"
    )
    assert KEY not in result.stdout + result.stderr


async def test_a_refused_key_is_one_line_naming_the_key_variable() -> None:
    """The API answers 401: exit 3, the hint names ANTHROPIC_API_KEY, the key never shows."""
    async with FakeAnthropicServer([text_response("never")], api_key="the-right-key") as server:
        result = await conjure(
            "chat", "hi", ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url
        )
    line = the_error_line(result)
    assert result.returncode == 3
    assert line.startswith("conjure: error: AuthenticationError: HTTP 401")
    assert line.endswith("; hint: check ANTHROPIC_API_KEY")
    assert KEY not in result.stdout + result.stderr


async def test_a_dead_docker_host_is_one_line_naming_docker_host() -> None:
    """No engine at DOCKER_HOST: a backend error, exit 4, the hint says what to start."""
    host = f"tcp://127.0.0.1:{closed_port()}"
    result = await conjure("docker", "build", "--offline", DOCKER_HOST=host)
    line = the_error_line(result)
    assert result.returncode == 4
    assert line.startswith("conjure: error: DockerUnavailableError: ")
    assert host in line
    assert line.endswith(
        "; hint: start the Docker engine, or point DOCKER_HOST at one that answers"
    )


async def test_an_online_build_without_a_registry_hints_at_offline() -> None:
    """The engine cannot pull the base image: the hint is ``conjure docker build --offline``."""
    lines = [{"stream": "Step 1/6 : FROM python:3.12-slim\n"}, {"error": NO_REGISTRY}]
    async with fake_docker_engine(lines) as engine:
        result = await conjure("docker", "build", DOCKER_HOST=engine.host)
    line = the_error_line(result)
    assert result.returncode == 4
    assert line.startswith("conjure: error: DockerError: ")
    assert NO_REGISTRY in line
    assert line.endswith(
        "; hint: no registry reachable? `conjure docker build --offline` "
        "builds the image from this host's files"
    )


async def test_debug_shows_the_traceback_then_the_line() -> None:
    """``conjure --debug``: the whole traceback first, the one line last, the same exit code."""
    result = await conjure("--debug", "chat", "--skills", "/nope", "hi", ANTHROPIC_API_KEY=KEY)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n"), result.stderr
    assert "conjure_async.SkillValidationError: 1 skill problem:" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("conjure: error: SkillValidationError: ")


async def test_chat_without_a_key_is_a_usage_error_on_stderr() -> None:
    """No ANTHROPIC_API_KEY: exit 2, one line on stderr pointing at the offline demo."""
    result = await conjure("chat", "hello")
    line = the_error_line(result)
    assert result.returncode == 2
    assert result.stdout == ""
    assert line == (
        "conjure: error: ANTHROPIC_API_KEY is not set; hint: set it to chat with Claude, "
        "or run `conjure demo` (offline, no key)"
    )


async def test_version_prints_the_package_version() -> None:
    """``conjure --version`` prints ``conjure X.Y.Z`` and exits 0."""
    result = await conjure("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"conjure {__version__}\n", "")


async def test_help_documents_every_exit_code() -> None:
    """``conjure --help`` lists the exit codes the errors above use."""
    result = await conjure("--help")
    assert result.returncode == 0
    codes = result.stdout.split("exit codes:", 1)[1]
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"\n  {code} " in codes, codes
