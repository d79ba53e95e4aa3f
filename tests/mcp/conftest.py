"""Fixtures for the MCP tests: our probe server over stdio and over streamable HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.helpers import terminate

PROBE = Path(__file__).with_name("probe_server.py")


@pytest.fixture
def probe_command() -> list[str]:
    """The command line of the probe server over stdio."""
    return [sys.executable, str(PROBE)]


@pytest.fixture
async def probe_url() -> AsyncIterator[str]:
    """The probe server over streamable HTTP on 127.0.0.1 (its own process)."""
    async with await anyio.open_process(
        [sys.executable, str(PROBE), "--http"], stdout=subprocess.PIPE, stderr=None
    ) as process:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive(1)
                line += chunk
        port = int(line.split()[1])
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            await terminate(process, 10)
