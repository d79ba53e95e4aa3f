"""MCP tool-call overhead: one tool call through McpBackend (stdio, streamable HTTP)
against the same tool as a direct native call.

Each row drains ``backend.run_tool`` for an ``echo`` tool (the same function
body everywhere) ``CALLS`` times after ``WARMUP`` calls, in one process, on
one event loop. The MCP server is the test suite's probe server
(``tests/mcp/probe_server.py``, an ``MCPServer``): over stdio as a subprocess,
over streamable HTTP as a subprocess on 127.0.0.1. Also timed: connecting
(spawn or HTTP connect + ``initialize`` + ``tools/list``), and opening a
session whose :class:`~conjure_async.mcp.McpSkillsBackend` loads the example
skills from ``conjure mcp serve`` over stdio (spawn, list, read and verify
every file, write them) against the same session on local skills.

Run: ``python -m benchmarks.bench_mcp`` (needs the ``[mcp]`` extra). Prints a
markdown table; ``python -m benchmarks`` puts it in ``docs/performance.md``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from conjure_async import Session
from conjure_async._logging import get_logger
from conjure_async.backends import Backend, LocalBackend, NativeBackend, ToolCall, ToolContext, tool
from conjure_async.mcp import McpBackend, McpSkillsBackend
from conjure_async.skills import load_skills
from conjure_async.testing import EXAMPLE_SKILLS, ScriptedModel

PROBE = Path(__file__).resolve().parent.parent / "tests" / "mcp" / "probe_server.py"
CALLS = 300
WARMUP = 30
OPENS = 5


@tool
async def echo(text: str) -> str:
    """Return the text."""
    return text


async def _call(backend: Backend, name: str) -> None:
    ctx: ToolContext[None] = ToolContext("bench", "c1", name, get_logger(), None)
    async for _ in backend.run_tool(ToolCall("c1", name, {"text": "hi"}), ctx):
        pass


async def _times(backend: Backend, name: str, calls: int = CALLS) -> list[float]:
    for _ in range(WARMUP):
        await _call(backend, name)
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        await _call(backend, name)
        out.append(time.perf_counter() - start)
    return out


@asynccontextmanager
async def _http_probe() -> AsyncIterator[str]:
    async with await anyio.open_process(
        [sys.executable, str(PROBE), "--http"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive(1)
        try:
            yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
        finally:
            process.terminate()
            await process.wait()


def _row(label: str, samples: list[float], base: float | None) -> str:
    qs = statistics.quantiles(samples, n=10)
    p50 = statistics.median(samples) * 1e3
    extra = f"{p50 - base:+.3f}" if base is not None else "—"
    return f"| {label} | {p50:.3f} | {qs[8] * 1e3:.3f} | {extra} |"


async def _open_seconds(make: Any, opens: int) -> list[float]:
    """Seconds to open (and close) a session on ``make()``, ``opens`` times."""
    out = []
    for _ in range(opens):
        start = time.perf_counter()
        async with Session(make(), model=ScriptedModel([])):
            out.append(time.perf_counter() - start)
    return out


async def run(quick: bool = False) -> list[str]:
    """Measure and return the markdown table lines."""
    calls, opens = (CALLS // 3, 2) if quick else (CALLS, OPENS)
    lines = [
        f"MCP tool-call overhead ({calls} calls after {WARMUP} warm-up; echo tool)",
        "",
        "| path | p50 ms | p90 ms | over native p50 ms |",
        "|---|---|---|---|",
    ]
    native = await _times(NativeBackend(echo), "echo", calls)
    base = statistics.median(native) * 1e3
    lines.append(_row("native tool (NativeBackend.run_tool)", native, None))
    start = time.perf_counter()
    async with McpBackend([sys.executable, str(PROBE)]) as stdio:
        connect_stdio = time.perf_counter() - start
        samples = await _times(stdio, "probe_echo", calls)
        lines.append(_row("MCP stdio (McpBackend.run_tool)", samples, base))
    async with _http_probe() as url:
        start = time.perf_counter()
        async with McpBackend(url=url) as http:
            connect_http = time.perf_counter() - start
            samples = await _times(http, "probe_echo", calls)
            lines.append(_row("MCP streamable HTTP (McpBackend.run_tool)", samples, base))
    local = load_skills(EXAMPLE_SKILLS)
    serve = [sys.executable, "-m", "conjure_async", "mcp", "serve", str(EXAMPLE_SKILLS)]
    plain = statistics.median(await _open_seconds(lambda: LocalBackend(local), opens))
    served = statistics.median(
        await _open_seconds(
            lambda: McpSkillsBackend(
                {"ex": McpBackend(serve)}, backend="local", allow_unsandboxed=True
            ),
            opens,
        )
    )
    connects = []
    for _ in range(opens):
        start = time.perf_counter()
        async with McpBackend(serve):
            connects.append(time.perf_counter() - start)
    connect_serve = statistics.median(connects)
    count = sum(len(s.resources.all()) + 1 for s in local)
    lines += [
        "",
        (
            "Connect (spawn/connect + initialize + tools/list): "
            f"stdio {connect_stdio * 1e3:.0f} ms, HTTP {connect_http * 1e3:.0f} ms."
        ),
        "",
        (
            f"Session open with skills from `conjure mcp serve` over stdio ({len(local)} skills, "
            f"{count} files listed, read, verified and written; median of {opens}): "
            f"{served * 1e3:.0f} ms, against {plain * 1e3:.1f} ms with the same skills local; "
            f"connecting to that server alone (spawn + initialize + tools/list) takes "
            f"{connect_serve * 1e3:.0f} ms."
        ),
    ]
    return lines


def main(argv: Any = None) -> None:
    del argv
    print("\n".join(anyio.run(run)))


if __name__ == "__main__":
    main()
