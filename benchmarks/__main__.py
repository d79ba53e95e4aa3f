"""Run every benchmark and write ``docs/performance.md``: ``python -m benchmarks [--quick]``.

``nox -s bench`` runs this. Each benchmark module exposes
``async def run(quick: bool = False) -> list[str]`` returning markdown; this
module puts their sections together with the environment they ran in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import inspect
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from benchmarks._targets import VERDICTS, mark

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "performance.md"

MODULES = (
    ("benchmarks.bench_loop", "Loop overhead"),
    ("benchmarks.bench_concurrency", "Concurrent sessions"),
    ("benchmarks.bench_local", "Local backend"),
    ("benchmarks.bench_peers", "Against peer runtimes"),
    ("benchmarks.bench_docker", "Docker backend"),
    ("benchmarks.bench_mcp", "MCP"),
    ("benchmarks.bench_cost", "Long conversations and cost"),
    ("benchmarks.bench_egress", "Network policy"),
    ("benchmarks.bench_durable", "Durable sessions on Temporal"),
    ("benchmarks.bench_store", "Saving conversations to a store"),
    ("benchmarks.bench_telemetry", "Telemetry with captured content"),
)
PACKAGES = (
    "conjure-async",
    "anyio",
    "pydantic",
    "httpx2",
    "pydantic-ai-slim",
    "openai-agents",
    "anthropic",
    "aiodocker",
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> list[str]:
    """Markdown lines describing the machine and the package versions."""
    cpu = platform.processor() or platform.machine()
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        "## Environment",
        "",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPUs: {os.cpu_count()} ({model or cpu})",
        (
            f"- Python: {platform.python_implementation()} {platform.python_version()} "
            f"on {platform.system()} {platform.release()}"
        ),
        f"- Load average when the run started: {_load()}",
        "- Packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        "",
    ]


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


async def _section(module_name: str, quick: bool) -> tuple[list[str], str | None]:
    """Run one module's ``run``; return its lines, or why it was skipped."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return [], f"not importable ({type(exc).__name__}: {exc})"
    run: Any = getattr(module, "run", None)
    if run is None:
        return [], f"has no run(); run `python -m {module_name}` for its figures"
    try:
        result = run(quick=quick) if "quick" in inspect.signature(run).parameters else run()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return [], f"failed ({type(exc).__name__}: {exc})"
    return list(result), None


async def main_async(quick: bool, only: list[str]) -> str:
    """Run the benchmarks and return the markdown."""
    VERDICTS.clear()
    environment_lines = environment()  # the load average before the run
    started_run = time.perf_counter()
    body: list[str] = []
    skipped: list[str] = []
    for module_name, title in MODULES:
        if only and not any(name in module_name for name in only):
            continue
        started = time.perf_counter()
        section, why = await _section(module_name, quick)
        elapsed = time.perf_counter() - started
        if why is not None:
            skipped.append(f"- {title} (`{module_name}`): {why}")
            continue
        body += [f"## {title}", "", *section, f"*({elapsed:.0f} s)*", ""]
    minutes = (time.perf_counter() - started_run) / 60
    lines = [
        "# Performance",
        "",
        (
            "Every figure below comes from one run of `nox -s bench` (`python -m benchmarks`) "
            "on the machine described under *Environment*; each comparison is measured against "
            "its baseline or peers in the same run, so ratios matter more than absolute times "
            "(a shared or loaded machine shifts all of them). CPU-time figures are medians of "
            "interleaved rounds; wall-time figures alternate their contenders too."
        ),
        "",
        (
            f"This run{' (`--quick`: smaller sizes, fewer rounds)' if quick else ''} took "
            f"{minutes:.1f} minutes."
        ),
        "",
        *_summary(),
        *environment_lines,
        *body,
    ]
    if skipped:
        lines += ["## Not measured in this run", "", *skipped, ""]
    lines += [
        "## How to reproduce",
        "",
        "```console",
        "pip install -e '.[test,bench]'",
        "nox -s bench            # all benchmarks; writes docs/performance.md and docs/img/",
        "python -m benchmarks --quick   # smaller sizes, a few minutes",
        "python -m benchmarks --only loop concurrency   # some modules",
        "python -m benchmarks.bench_peers --quick   # one module, printed",
        "python -m benchmarks.instructions   # instructions per call and per session (valgrind)",
        "```",
        "",
        (
            "Wall-clock and CPU figures on a shared VM vary by up to 1.5x between runs of the "
            "same code; `benchmarks.instructions` counts instructions under valgrind instead "
            "(stable to about 1%), which is how changes to the hot path are compared "
            "(ADR 0014)."
        ),
        "",
        (
            "Peer runtimes (pydantic-ai, openai-agents, the anthropic SDK) come from the `bench` "
            "extra; a peer that is not installed is reported as such, never estimated."
        ),
        "",
    ]
    return "\n".join(lines)


def _summary() -> list[str]:
    """The issue #11 targets as this run measured them."""
    if not VERDICTS:
        return []
    lines = [
        "## Targets (issue #11)",
        "",
        (
            "Each target as measured in this run (details in the sections below). *Overhead* "
            "is a contender's CPU time per tool call minus that of a hand-written dict-only "
            "loop doing the same work in the same run."
        ),
        "",
        "| target | measured | holds | note |",
        "|---|---|---|---|",
    ]
    lines += [f"| {v.target} | {v.measured} | {mark(v.holds)} | {v.note} |" for v in VERDICTS]
    return [*lines, ""]


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Run the benchmarks; write docs/performance.md")
    parser.add_argument("--quick", action="store_true", help="small sizes, short budgets")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="markdown file to write")
    parser.add_argument("--print", action="store_true", help="also print the markdown")
    parser.add_argument("--only", nargs="*", default=[], help="module name parts to run")
    args = parser.parse_args()
    text = anyio.run(main_async, args.quick, args.only)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    if args.print:
        print(text)
    else:
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
