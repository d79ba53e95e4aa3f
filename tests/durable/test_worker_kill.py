"""At-least-once made safe: a worker killed by PID, a second one finishes the session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import anyio
import pytest
from temporalio.client import Client

from conjure_async._logging import get_logger
from conjure_async.backends import LocalBackend, ToolCall, ToolContext, ToolResult
from conjure_async.temporal import BackendSpec, DurableConfig, DurableSession
from tests.durable.temporal_server import TemporalServer
from tests.durable.worker_process import start_worker, stop_worker

pytestmark = pytest.mark.anyio


async def test_killed_worker_mid_call_a_second_worker_finishes_without_running_it_twice(
    temporal_server: TemporalServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Worker A runs step 2, dies by SIGKILL before reporting it; B resumes from the record."""
    workdir = tmp_path / "work"
    marker = tmp_path / "stalled"
    first = start_worker(temporal_server.address, task_queue, "kill-test-host", marker)
    second: subprocess.Popen[str] | None = None
    try:
        config = DurableConfig(
            backends=[BackendSpec("local", {"workdir": str(workdir)})],
            heartbeat_timeout=2.0,
        )
        session = await DurableSession.start(temporal_client, config, task_queue=task_queue)
        replies = []
        async with anyio.create_task_group() as tg:

            async def chat() -> None:
                replies.append(await session.chat("steps: 3 echo step {i} >> steps.txt"))

            tg.start_soon(chat)
            with anyio.fail_after(60):
                while not marker.exists():  # noqa: ASYNC110 - a file another process writes
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)  # step 2 ran and was recorded, never reported
            first.wait()
            second = start_worker(temporal_server.address, task_queue, "kill-test-host")
        assert replies[0].text == "done"
        # Step 2 ran once: the retry on worker B returned A's recorded result.
        assert (workdir / "steps.txt").read_text().splitlines() == ["step 1", "step 2", "step 3"]
        history = await session.history()
        uses = [b.id for m in history for b in m.content if getattr(b, "type", "") == "tool_use"]
        results = [
            b.tool_use_id
            for m in history
            for b in m.content
            if getattr(b, "type", "") == "tool_result"
        ]
        assert len(uses) == 3
        assert len(set(uses)) == 3
        assert results == uses  # nothing lost, in order
        assert [c.output for c in replies[0].tool_calls] == ["(no output)"] * 3
        await session.close()
        # SIGKILL left worker A's private folder (HOME, TMPDIR of its commands) behind:
        # a killed process cleans nothing. B's went with the session's close.
        safe_id = "".join(c for c in session.session_id if c.isalnum())[:12]
        for leftover in Path(tempfile.gettempdir()).glob(f"conjure-{safe_id}-private-*"):
            shutil.rmtree(leftover)
    finally:
        first.kill() if first.poll() is None else None
        stop_worker(first)
        if second is not None:
            stop_worker(second)


async def test_local_bash_returns_the_recorded_result_for_a_repeated_key(tmp_path: Path) -> None:
    """A retried call with the same idempotency key does not run the command again."""
    backend = LocalBackend(workdir=tmp_path / "work", containment="subreaper")
    async with anyio.create_task_group() as tg:
        from conjure_async.backends import BackendContext

        await backend.open(BackendContext("s1", tg, get_logger()))
        try:
            call = ToolCall(
                "toolu_1", "bash_tool", {"command": "echo ran >> log.txt; wc -l < log.txt"}
            )

            async def run(key: str | None) -> ToolResult:
                ctx: ToolContext[None] = ToolContext(
                    "s1", call.id, call.name, get_logger(), None, key
                )
                found = [e async for e in backend.run_tool(call, ctx) if isinstance(e, ToolResult)]
                return found[0]

            once = await run("wf/toolu_1")
            again = await run("wf/toolu_1")
            other = await run("wf/toolu_2")
            plain = await run(None)
            assert once.output.strip() == again.output.strip() == "1"
            assert other.output.strip() == "2"
            assert plain.output.strip() == "3"
            assert [f.name for f in once.files] == ["log.txt"]  # the records are not files
        finally:
            await backend.aclose()
