"""Test backends and utilities shared by the session tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar

import anyio
from anyio.abc import Process

from conjure_async.backends import Backend, ToolCall, ToolChunk, ToolContext, ToolEvent, ToolResult
from conjure_async.messages import ToolDefinition

ToolFn = Callable[[dict[str, Any]], Awaitable[str]]


class FuncBackend(Backend):
    """A backend whose tools are plain async functions of the input (for loop tests)."""

    kind: ClassVar[str] = "func"

    def __init__(self, tools: dict[str, ToolFn], schemas: dict[str, dict[str, Any]] | None = None):
        self.funcs = tools
        self.schemas = schemas or {}
        self.calls: list[ToolCall] = []
        self.opened = 0
        self.closed = 0
        self.contexts: list[ToolContext[Any]] = []

    async def open(self, ctx: Any) -> None:
        self.opened += 1

    async def aclose(self) -> None:
        self.closed += 1

    def tools(self) -> Sequence[ToolDefinition]:
        return [
            ToolDefinition(
                name=name,
                description=f"test tool {name}",
                input_schema=self.schemas.get(name, {"type": "object"}),
            )
            for name in self.funcs
        ]

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        self.calls.append(call)
        self.contexts.append(ctx)
        yield ToolChunk(f"running {call.name}\n")
        try:
            text = await self.funcs[call.name](call.input)
        except ValueError as exc:
            yield ToolResult(output=str(exc), is_error=True)
            return
        yield ToolResult(output=text)


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:  # noqa: PTH123
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_for_file(path: os.PathLike[str] | str, timeout: float = 10.0) -> str:
    """Poll until ``path`` exists and is non-empty; return its text."""
    with anyio.fail_after(timeout):
        while True:
            try:
                text = await anyio.Path(path).read_text()
            except FileNotFoundError:
                text = ""
            if text.strip():
                return text
            await anyio.sleep(0.01)


async def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``timeout``: a SIGKILL takes a moment."""
    with anyio.move_on_after(timeout):
        while process_alive(pid):  # noqa: ASYNC110 - polling /proc; nothing to wait on
            await anyio.sleep(0.01)
    return not process_alive(pid)


def compact_events(events: list[Any]) -> list[str]:
    """Event kinds in order, consecutive text deltas joined into one ``text:...`` item."""
    out: list[str] = []
    for event in events:
        if event.kind == "text_delta":
            if out and out[-1].startswith("text:"):
                out[-1] += event.text
            else:
                out.append(f"text:{event.text}")
        else:
            out.append(event.kind)
    return out


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (nothing imported yet); its output as text."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


async def terminate(process: Process, grace: float) -> None:
    """SIGTERM ``process``; SIGKILL it when it has not exited after ``grace`` seconds."""
    process.terminate()
    with anyio.move_on_after(grace, shield=True):
        await process.wait()
    if process.returncode is None:
        process.kill()
