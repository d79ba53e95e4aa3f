"""Test helpers: the Skills extension's requests for the official client, and serve processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from mcp_types import Request, RequestParams, Result
from pydantic import ConfigDict

from tests.helpers import terminate


class ListParams(RequestParams):
    cursor: str | None = None


class GetParams(RequestParams):
    uri: str


class SkillsList(Request[ListParams | None, Literal["skills/list"]]):
    method: Literal["skills/list"] = "skills/list"
    params: ListParams | None = None


class SkillsGet(Request[GetParams, Literal["skills/get"]]):
    method: Literal["skills/get"] = "skills/get"
    params: GetParams


class AnyResult(Result):
    model_config = ConfigDict(extra="allow")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "conjure_async", "mcp", "serve", *args]


@asynccontextmanager
async def serve_http(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """``conjure mcp serve --transport http --port 0 ARGS`` in a process; yields its URL."""
    command = serve_command(*args, "--transport", "http", "--port", "0")
    async with await anyio.open_process(command, stderr=subprocess.PIPE, env=env) as process:
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(60):
            while b"/mcp" not in seen:
                seen += await process.stderr.receive()
        url = seen.decode().split("serving MCP on ", 1)[1].split()[0]
        try:
            yield url
        finally:
            await terminate(process, 20)


def text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
