"""Start and stop a durable-session worker in its own process (``worker_main``).

The worker-kill test and ``benchmarks/bench_durable.py`` both kill such a
worker by PID; this is their one launcher.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    address: str, task_queue: str, host: str, stall_marker: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m tests.durable.worker_main`` and wait until it polls.

    With ``stall_marker``, the worker hangs after finishing the tool call of
    ``step 2`` (before reporting it) and writes the marker file.
    """
    argv = [sys.executable, "-m", "tests.durable.worker_main", address, task_queue, host]
    argv += [str(stall_marker)] if stall_marker is not None else []
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        stop_worker(process)
        raise RuntimeError(f"the worker process did not start (it said {line!r})")
    return process


def stop_worker(process: subprocess.Popen[str]) -> None:
    """SIGTERM (SIGKILL after 30 s) unless it has ended; close its pipe."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
