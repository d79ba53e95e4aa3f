"""Docker backend figures on a real engine, each against a baseline in the same run.

1. ``bash_tool`` through :class:`DockerBackend` (``run_tool`` drained) against a
   raw aiodocker exec of the same command (create, start, read stdout/stderr,
   inspect the exit code), both in an already running container.
2. First tool call of a session: cold (create + start the container) against
   a warm pool (the container is ready).
3. Sessions per second: open, one tool call (which creates the container),
   close (which removes it), sequentially and 4 at a time.

Run: ``python -m benchmarks.bench_docker`` (uses ``DOCKER_HOST`` or the local
socket, else starts a private dockerd as root, like the tests). Prints a
markdown table.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio

from benchmarks.bench_local import timed
from conjure_async import Session
from conjure_async._logging import get_logger
from conjure_async.backends import BackendContext, DockerBackend, ToolCall, ToolContext, WarmPool
from conjure_async.backends.docker._api import docker_client
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.docker.engine import Engine, build_test_image, find_or_start_engine, stop_engine

COMMAND = "echo hi"
EXECS = 120
FIRST_CALLS = 6
SESSIONS = 12


def _ctx() -> ToolContext[None]:
    return ToolContext("bench", "call", "bash_tool", get_logger(), None)


async def _tool_call(backend: DockerBackend) -> None:
    call = ToolCall("call", "bash_tool", {"command": COMMAND, "description": "bench"})
    async for _ in backend.run_tool(call, _ctx()):
        pass


async def _raw_exec(client: Any, container_id: str) -> None:
    execution = await client.containers.container(container_id).exec(["bash", "-c", COMMAND])
    out = bytearray()
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            out += message.data
    info = await execution.inspect()
    assert info["ExitCode"] == 0


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (mean {statistics.mean(values) * 1000:.1f})"


async def bench_exec(engine: Engine, rows: list[tuple[str, str, str]]) -> None:
    plain = DockerBackend(image=engine.image, docker_host=engine.host, track_files=False)
    tracked = DockerBackend(image=engine.image, docker_host=engine.host)
    ours: list[float] = []
    with_files: list[float] = []
    raw: list[float] = []
    async with anyio.create_task_group() as tg, docker_client(engine.host) as client:
        await plain.open(BackendContext("bench", tg, get_logger()))
        await tracked.open(BackendContext("bench2", tg, get_logger()))
        try:
            await _tool_call(plain)  # creates the containers
            await _tool_call(tracked)
            container_id = plain.container_id
            assert container_id is not None
            for _ in range(EXECS // 10):  # interleave so all see the same engine state
                raw += await timed(lambda: _raw_exec(client, container_id), 10)
                ours += await timed(lambda: _tool_call(plain), 10)
                with_files += await timed(lambda: _tool_call(tracked), 10)
        finally:
            await plain.aclose()
            await tracked.aclose()
    base = statistics.median(raw)
    rows.append(("raw aiodocker exec `bash -c 'echo hi'`", _ms(raw), "1.00x"))
    rows.append(
        (
            "bash_tool `echo hi` (run_tool, track_files=False)",
            _ms(ours),
            f"{statistics.median(ours) / base:.2f}x raw",
        )
    )
    rows.append(
        (
            "bash_tool `echo hi` (run_tool, default track_files=True)",
            _ms(with_files),
            f"{statistics.median(with_files) / base:.2f}x raw",
        )
    )


async def _first_call(engine: Engine, pool: WarmPool | None) -> float:
    backend = DockerBackend(image=engine.image, docker_host=engine.host, pool=pool)
    if pool is not None:
        await pool.prewarm(backend)
    async with anyio.create_task_group() as tg:
        await backend.open(BackendContext("bench", tg, get_logger()))
        try:
            start = time.perf_counter()
            await _tool_call(backend)
            elapsed = time.perf_counter() - start
            assert backend.from_pool == (pool is not None)
        finally:
            await backend.aclose()
    return elapsed


async def bench_first_call(engine: Engine, rows: list[tuple[str, str, str]]) -> None:
    cold = [await _first_call(engine, None) for _ in range(FIRST_CALLS)]
    async with WarmPool(size=1, docker_host=engine.host) as pool:
        warm = [await _first_call(engine, pool) for _ in range(FIRST_CALLS)]
    rows.append(("first tool call, cold container", _ms(cold), ""))
    rows.append(
        (
            "first tool call, warm pool",
            _ms(warm),
            f"{statistics.median(cold) / statistics.median(warm):.1f}x faster",
        )
    )


async def _session(engine: Engine) -> None:
    model = ScriptedModel(
        [
            tool_use_response(tool_call("bash_tool", {"command": "true", "description": "b"})),
            text_response("done"),
        ]
    )
    backend = DockerBackend(image=engine.image, docker_host=engine.host)
    async with Session(backend, model=model) as session:
        await session.chat("go")


async def bench_sessions(engine: Engine, rows: list[tuple[str, str, str]]) -> None:
    start = time.perf_counter()
    for _ in range(SESSIONS):
        await _session(engine)
    sequential = SESSIONS / (time.perf_counter() - start)

    limiter = anyio.CapacityLimiter(4)

    async def limited() -> None:
        async with limiter:
            await _session(engine)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(SESSIONS):
            tg.start_soon(limited)
    concurrent = SESSIONS / (time.perf_counter() - start)
    rows.append(("sessions/s: open + 1 tool call + close, sequential", f"{sequential:.2f}/s", ""))
    rows.append(("sessions/s: same, 4 at a time", f"{concurrent:.2f}/s", ""))


async def run_all(engine: Engine) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    await bench_exec(engine, rows)
    await bench_first_call(engine, rows)
    await bench_sessions(engine, rows)
    return rows


async def run(quick: bool = False) -> list[str]:
    """Run on a found or started engine; return the markdown table lines."""
    del quick  # the Docker figures are already small runs
    found = await anyio.to_thread.run_sync(find_or_start_engine)
    if isinstance(found, str):
        return [f"No Docker engine could be had: {found}", ""]
    try:
        await anyio.to_thread.run_sync(build_test_image, found)
        rows = await run_all(found)
    finally:
        await anyio.to_thread.run_sync(stop_engine, found)
    lines = ["| measurement | median | vs baseline |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {note} |" for name, value, note in rows]
    return [*lines, ""]


def main() -> None:
    found = find_or_start_engine()
    if isinstance(found, str):
        raise SystemExit(f"no Docker engine: {found}")
    try:
        build_test_image(found)
        rows = anyio.run(run_all, found)
    finally:
        stop_engine(found)
    print("| measurement | median | vs baseline |")
    print("|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
