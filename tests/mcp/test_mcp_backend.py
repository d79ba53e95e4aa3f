"""McpBackend: MCP servers' tools in a session, over stdio and streamable HTTP."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async import McpError, Session, ToolConflictError
from conjure_async.backends import NativeBackend, tool
from conjure_async.mcp import McpBackend
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.helpers import process_alive

pytestmark = pytest.mark.anyio


def script(*calls: dict[str, Any]) -> ScriptedModel:
    """A model making ``calls`` (one response each) and then answering "done"."""
    return ScriptedModel([*(tool_use_response(c) for c in calls), text_response("done")])


async def test_third_party_time_server_over_stdio() -> None:
    """The PyPI mcp-server-time's tools are offered prefixed and a call returns its JSON."""
    program = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
    assert program is not None, "mcp-server-time is installed by the [test] extra"
    async with McpBackend([program, "--local-timezone", "UTC"], prefix="time_") as backend:
        names = [t.name for t in backend.tools()]
        assert names == ["time_get_current_time", "time_convert_time"]
        model = script(tool_call("time_get_current_time", {"timezone": "Europe/Oslo"}))
        async with Session(backend, model=model) as session:
            reply = await session.chat("what time is it in Oslo?")
    (record,) = reply.tool_calls
    assert not record.is_error
    assert record.backend == "mcp"
    assert json.loads(record.output)["timezone"] == "Europe/Oslo"


async def test_own_server_over_http_text_image_structured_and_errors(probe_url: str) -> None:
    """Text, image, structured content, a tool error and bad arguments map to tool results."""
    async with McpBackend(url=probe_url) as backend:
        assert backend.server_name == "probe"
        model = script(
            tool_call("probe_echo", {"text": "hi"}),
            tool_call("probe_add", {"a": 2, "b": 3}),
            tool_call("probe_picture", {}),
            tool_call("probe_fail", {"why": "no reason"}),
            tool_call("probe_add", {"a": "x", "b": 3}),
        )
        async with Session(backend, model=model) as session:
            reply = await session.chat("go")
    echo, added, picture, failed, bad = reply.tool_calls
    assert (echo.output, echo.is_error) == ("hi", False)
    assert (added.output, added.is_error) == ("5", False)
    assert not picture.is_error
    assert failed.is_error
    assert "no reason" in failed.output
    assert bad.is_error
    sent = model.requests[3].messages[-1].content
    (image_result,) = [b for b in sent if getattr(b, "type", None) == "tool_result"]
    assert image_result.content[0]["type"] == "image"
    assert image_result.content[0]["source"]["media_type"] == "image/png"


async def test_stdio_server_process_does_not_outlive_its_session(probe_command: list[str]) -> None:
    """The stdio server's process is gone when the session closes."""
    async with McpBackend(probe_command) as backend:
        model = script(tool_call("probe_pid", {}))
        async with Session(backend, model=model) as session:
            reply = await session.chat("pid?")
        pid = int(reply.tool_calls[0].output)
        assert not process_alive(pid)
        assert not backend.connected


async def test_timeout_cancels_the_call_on_the_server(probe_command: list[str]) -> None:
    """A call past the tool timeout is an error result and the server's handler is cancelled."""
    async with McpBackend(probe_command) as backend:
        model = script(
            tool_call("probe_slow", {"seconds": 60}),
            tool_call("probe_was_cancelled", {"wait": 20}),
            tool_call("probe_pid", {}),
        )
        async with Session(backend, model=model, tool_timeout=1.5) as session:
            reply = await session.chat("go")
        slow, cancelled, pid = reply.tool_calls
        assert slow.is_error
        assert "timed out" in slow.output
        assert cancelled.output == "true"
        assert not process_alive(int(pid.output))


async def test_cancelled_chat_leaves_no_server_process(probe_command: list[str]) -> None:
    """Cancelling chat() mid-call and closing the session leaves no server process."""
    pids: list[int] = []
    model = script(tool_call("probe_pid", {}), tool_call("probe_slow", {"seconds": 60}))
    async with McpBackend(probe_command) as backend:
        session = Session(backend, model=model)
        async with session, anyio.create_task_group() as tg:

            async def run() -> None:
                async for event in session.stream("go"):
                    if event.kind == "tool_finished" and event.name == "probe_pid":
                        pids.append(int(event.output))
                    if event.kind == "tool_started" and event.name == "probe_slow":
                        tg.cancel_scope.cancel()

            tg.start_soon(run)
        assert pids
        assert not process_alive(pids[0])


async def test_missing_command_raises_mcp_error_naming_it() -> None:
    """A server that cannot start raises McpError with the command line."""
    with pytest.raises(McpError, match="no-such-mcp-server --flag") as info:
        async with McpBackend(["no-such-mcp-server", "--flag"]):
            pass
    assert info.value.target == "no-such-mcp-server --flag"


async def test_server_exiting_before_initialize_raises_with_its_stderr() -> None:
    """A server that dies at start raises McpError quoting the end of its stderr."""
    command = [sys.executable, "-c", "import sys; sys.stderr.write('boom at start'); sys.exit(3)"]
    with pytest.raises(McpError, match="boom at start"):
        async with McpBackend(command):
            pass


async def test_unreachable_url_raises_mcp_error_without_credentials() -> None:
    """An unreachable URL raises McpError naming the URL without its password or query."""
    with pytest.raises(McpError) as info:
        async with McpBackend(url="http://user:secret@127.0.0.1:9/mcp?token=abc"):
            pass
    assert "127.0.0.1:9/mcp" in str(info.value)
    assert "secret" not in str(info.value)
    assert "abc" not in str(info.value)


async def test_session_connects_an_unconnected_backend_when_it_opens(
    probe_command: list[str],
) -> None:
    """A session built from an unconnected backend lists its tools at open and calls one."""
    backend = McpBackend(probe_command)
    model = script(tool_call("probe_echo", {"text": "lazy"}), tool_call("probe_pid", {}))
    session = Session(backend, model=model)
    assert session.tools == []
    async with session:
        assert "probe_echo" in [t["name"] for t in session.tools]
        reply = await session.chat("go")
    echo, pid = reply.tool_calls
    assert (echo.output, echo.is_error, echo.backend) == ("lazy", False, "mcp")
    sent = [t["name"] for t in model.requests[0].tools or []]
    assert sent == [t.name for t in backend.tools()]
    assert not backend.connected
    assert not process_alive(int(pid.output))


async def test_clash_found_when_the_session_opens_is_refused(probe_command: list[str]) -> None:
    """A server tool clashing with another backend's tool fails the session's open, no leak."""

    @tool
    async def probe_echo(text: str) -> str:
        """A native tool named like the server's."""
        return text

    backend = McpBackend(probe_command)
    session = Session([backend, NativeBackend(probe_echo)], model=ScriptedModel([]))
    with pytest.raises(ToolConflictError, match="probe_echo"):
        async with session:
            pass
    assert not backend.connected


async def test_clashing_names_are_refused(probe_command: list[str]) -> None:
    """A rename onto another tool's name, and a clash with another backend, are refused."""
    with pytest.raises(McpError, match="would both be offered as 'probe_add'"):
        async with McpBackend(probe_command, rename={"echo": "probe_add"}):
            pass

    @tool
    async def probe_echo(text: str) -> str:
        """A native tool named like the server's."""
        return text

    async with McpBackend(probe_command) as backend:
        with pytest.raises(ToolConflictError, match="probe_echo"):
            Session([backend, NativeBackend(probe_echo)], model=ScriptedModel([]))


async def test_invalid_tool_name_is_refused(probe_command: list[str]) -> None:
    """A prefix producing a name the Messages API refuses raises McpError."""
    with pytest.raises(McpError, match="not a valid tool name"):
        async with McpBackend(probe_command, prefix="my server."):
            pass


async def test_a_second_session_reconnects(probe_command: list[str]) -> None:
    """After one session closed the server, the next session starts it again."""
    async with McpBackend(probe_command) as backend:
        for _ in range(2):
            model = script(tool_call("probe_echo", {"text": "again"}))
            async with Session(backend, model=model) as session:
                reply = await session.chat("go")
            assert reply.tool_calls[0].output == "again"
