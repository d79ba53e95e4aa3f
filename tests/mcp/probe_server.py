"""An MCP server of our own for the tests: stdio by default, ``--http`` for streamable HTTP.

With ``--http`` it binds 127.0.0.1 on a free port, prints ``PORT <n>`` on
stdout, and serves ``/mcp`` until terminated.
"""

from __future__ import annotations

import os
import socket
import sys

import anyio
from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)

server = MCPServer("probe", version="0.1")
_cancelled = anyio.Event()


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def picture() -> Image:
    """A 1x1 PNG."""
    return Image(data=PNG, format="png")


@server.tool()
def fail(why: str) -> str:
    """Always fails with the reason."""
    raise ToolError(why)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, noting a cancellation."""
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        _cancelled.set()
        raise
    return "slept"


@server.tool()
async def was_cancelled(wait: float) -> bool:
    """Whether a slow call was cancelled (waits up to ``wait`` seconds for it)."""
    with anyio.move_on_after(wait):
        await _cancelled.wait()
    return _cancelled.is_set()


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


def main() -> None:
    if "--http" not in sys.argv:
        server.run()
        return
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # a client connecting before uvicorn serves waits in the backlog
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app(streamable_http_path="/mcp")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
