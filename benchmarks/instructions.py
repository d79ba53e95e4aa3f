"""Instructions per tool call and per session, counted under valgrind (stable to ~1%).

Wall-clock and CPU figures on a shared VM vary by up to 1.5x between runs of
the same code; instruction counts do not. This counts the instructions of
a chat of N tool calls and of N+1,000 (and of M and M+200 sessions of 10
calls each, opened and closed one after the other), so the difference is
the cost of one call (one session), start-up and imports cancelled out.
The cyclic collector is off during the measured work: when a full
collection falls into one of the two runs but not the other, it moves the
difference by up to 20,000 instructions per call, which would drown what is
measured. The collector's cost is in the wall-clock benchmarks.

Usage: ``python -m benchmarks.instructions [--calls N] [--sessions M]``
(needs ``valgrind``: ``apt-get install valgrind``). Not part of
``python -m benchmarks``: one count takes about a minute. ADR 0014.
"""

from __future__ import annotations

import argparse
import gc
import re
import shutil
import subprocess
import sys

import anyio

from benchmarks.bench_loop import conjure_loop
from benchmarks.peers_common import PROMPT
from benchmarks.peers_conjure import NoopBackend, SleepyModel
from conjure_async import Session

_COLLECTED = re.compile(r"Collected : (\d+)")


async def _sessions(count: int) -> None:
    model = SleepyModel(10, 0.0, fresh=False)
    for _ in range(count):
        async with Session(NoopBackend(), model=model, max_iterations=11) as session:
            await session.chat(PROMPT)


async def _workload(kind: str, size: int) -> None:
    await conjure_loop(50, collect=False)  # warm up: imports, caches, first-call work
    await _sessions(20)
    gc.collect()
    gc.disable()
    if kind == "calls":
        await conjure_loop(size, collect=False)
    else:
        await _sessions(size)


def count(kind: str, size: int) -> int:
    """Instructions of one process running the workload ``kind`` at ``size``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--run",
        kind,
        str(size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    """Print instructions per tool call and per session."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="the shorter chat's calls")
    parser.add_argument("--sessions", type=int, default=100, help="the fewer sessions")
    parser.add_argument("--run", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        anyio.run(_workload, args.run[0], int(args.run[1]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    per_call = (count("calls", args.calls + 1000) - count("calls", args.calls)) / 1000
    print(f"instructions per tool call (chat): {per_call:,.0f}")
    per_session = (count("sessions", args.sessions + 200) - count("sessions", args.sessions)) / 200
    print(f"instructions per session (open, chat of 10 calls, close): {per_session:,.0f}")


if __name__ == "__main__":
    main()
