"""McpBackend: the tools of one MCP server, offered in a session beside skills.

The connection (a stdio subprocess or a streamable-HTTP URL, through the
official ``mcp`` SDK) lives in one background task: it enters the SDK's
context managers, lists the tools, reports ready, then waits until it is told
to stop. Nothing is held across a ``yield``; tool calls use the SDK's
``ClientSession`` from the session's tool tasks.

The backend connects when its session opens (in the session's task group)
and the session reads the tool list then::

    async with Session(McpBackend(["mcp-server-time"]), model=model) as session:
        ...

``async with McpBackend(...)`` connects earlier (to look at :meth:`tools`
before building a session). Closing the session closes the connection (the
stdio server process is gone when the session's ``async with`` ends); a later
session reconnects and refuses a server whose tools changed.

Cancellation: the session's per-tool deadline (or a cancelled ``chat``)
cancels the pending ``tools/call``; the SDK sends ``notifications/cancelled``
so the server stops the work.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TextIO
from urllib.parse import urlsplit, urlunsplit

import anyio
from anyio.abc import TaskStatus

from conjure_async._exceptions import ConjureError, McpError, MissingDependencyError
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.mcp._content import model_names, result_content, sanitize
from conjure_async.messages import ToolDefinition

try:
    import httpx2
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp import types as mcp_types
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError("mcp", "mcp") from exc

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["McpBackend"]

_CONNECTION_CLOSED = -32000
_STDERR_TAIL = 2000


def describe_url(url: str) -> str:
    """``url`` without credentials, query or fragment (safe for errors and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class McpBackend(Backend):
    """The tools of one MCP server (stdio subprocess or streamable-HTTP URL).

    It connects when its :class:`~conjure_async.Session` opens (or earlier,
    with ``async with``); the session reads the tool list then. Each tool is offered as
    ``prefix + name`` (default prefix: the server's name and ``_``), or under
    the name ``rename`` gives it; two tools under one name, or a name the
    Messages API would refuse, raise :class:`~conjure_async.McpError`.

    A tool's ``is_error`` result, and a JSON-RPC error answering one call
    (unknown tool, bad arguments), reach the model as an error result. A server
    that cannot start, stops answering or breaks the protocol raises
    :class:`~conjure_async.McpError` naming the command or URL.

    Args:
        command: The stdio server's command line (program and arguments).
        url: Instead of ``command``: a streamable-HTTP endpoint.
        env: Extra environment variables for the stdio server (merged over the
            SDK's safe defaults; the parent's environment is not passed).
        cwd: The stdio server's working directory.
        headers: HTTP headers for ``url`` (e.g. authorization); never logged.
        prefix: Prepended to every tool name; ``None`` means the server's name
            and ``_``, ``""`` keeps the server's names.
        rename: Server tool name → the name the model sees (wins over ``prefix``).
        connect_timeout: Seconds to start the server and complete ``initialize``.
        errlog: Where a stdio server's stderr goes (a real file); by default an
            anonymous temporary file whose end is quoted when the server fails.
    """

    kind: ClassVar[str] = "mcp"

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        prefix: str | None = None,
        rename: Mapping[str, str] | None = None,
        connect_timeout: float = 30.0,
        errlog: TextIO | None = None,
    ) -> None:
        if (command is None) == (url is None):
            raise ValueError("give an MCP server's command or its url (exactly one)")
        if command is not None and (isinstance(command, str) or not command):
            raise ValueError("command is a non-empty sequence: [program, *arguments]")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.command = list(command) if command is not None else None
        self.url = url
        self.target = shlex.join(self.command) if self.command else describe_url(url or "")
        self._env = dict(env) if env else None
        self._cwd = cwd
        self._headers = dict(headers or {})
        self._prefix = prefix
        self._rename = dict(rename or {})
        self.connect_timeout = connect_timeout
        self._errlog = errlog
        self._own_errlog: TextIO | None = None
        self._session: ClientSession | None = None
        self._server_name: str | None = None
        self._capabilities: mcp_types.ServerCapabilities | None = None
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._stopped.set()
        self._failure: McpError | None = None
        self._names: dict[str, str] | None = None
        self._definitions: list[ToolDefinition] | None = None
        self._own_tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"McpBackend({self.target!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Whether the connection is up."""
        return self._session is not None

    @property
    def server_name(self) -> str | None:
        """The name the server reported in ``initialize`` (once connected)."""
        return self._server_name

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> McpBackend:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await self.connect(tg)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        self._own_tg = tg
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        tg, self._own_tg = self._own_tg, None
        try:
            await self.aclose()
        finally:
            if tg is not None:
                tg.cancel_scope.cancel()
                await tg.__aexit__(None, None, None)

    async def connect(self, task_group: TaskGroup) -> None:
        """Start the server (or reach the URL), initialize, and list its tools.

        The connection lives in a task of ``task_group`` until :meth:`aclose`.

        Raises:
            McpError: The server cannot be started or reached, the handshake
                failed, its tool names clash, or its tools changed since an
                earlier connection.
        """
        if self._session is not None:
            return
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._failure = None
        try:
            await task_group.start(self._serve)
        except McpError:
            raise
        except BaseException as exc:
            failure = self._translate(exc)
            if failure is None:
                raise
            raise failure from exc

    async def open(self, ctx: BackendContext) -> None:
        """Connect in the session's task group unless already connected."""
        if self._session is None:
            await self.connect(self._own_tg or ctx.task_group)

    async def aclose(self) -> None:
        """Close the connection; a stdio server process is gone when this returns."""
        self._stop.set()
        await self._stopped.wait()

    async def _serve(self, *, task_status: TaskStatus[None]) -> None:
        started = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                session = await self._enter(stack)
                with anyio.fail_after(self.connect_timeout):
                    init = await session.initialize()
                    # A server without the tools capability (one serving only skills) has none.
                    has_tools = init.capabilities.tools is not None
                    listed = await self._list_tools(session) if has_tools else []
                self._server_name = init.server_info.name
                self._capabilities = init.capabilities
                self._adopt(listed)
                self._session = session
                started = True
                task_status.started()
                await self._stop.wait()
        except Exception as exc:
            failure = self._translate(exc)  # while the stderr file is still open
            if not started:
                if failure is None:
                    raise
                raise failure from exc
            self._failure = failure
        finally:
            self._session = None
            self._stopped.set()
            self._close_errlog()

    async def _enter(self, stack: contextlib.AsyncExitStack) -> ClientSession:
        if self.command is not None:
            params = StdioServerParameters(
                command=self.command[0], args=self.command[1:], env=self._env, cwd=self._cwd
            )
            errlog = self._errlog
            if errlog is None:
                errlog = self._own_errlog = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in _close_errlog
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        else:
            assert self.url is not None
            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(30, read=None))
            )
            read, write = await stack.enter_async_context(
                streamable_http_client(self.url, http_client=client)
            )
        return await stack.enter_async_context(ClientSession(read, write))

    async def _list_tools(self, session: ClientSession) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    def _adopt(self, listed: list[mcp_types.Tool]) -> None:
        prefix = self._prefix
        if prefix is None:
            prefix = sanitize(self._server_name or "mcp") + "_"
        names = model_names(
            (t.name for t in listed), prefix=prefix, rename=self._rename, target=self.target
        )
        by_name = {t.name: t for t in listed}
        definitions = [
            ToolDefinition(
                name=offered,
                description=by_name[original].description or by_name[original].title or "",
                input_schema=dict(by_name[original].input_schema or {"type": "object"}),
            )
            for offered, original in names.items()
        ]
        if self._definitions is not None and definitions != self._definitions:
            raise McpError(
                "its tools changed since the session was built; build a new session",
                target=self.target,
            )
        self._names = names
        self._definitions = definitions

    def _close_errlog(self) -> None:
        if self._own_errlog is not None:
            self._own_errlog.close()
            self._own_errlog = None

    def _stderr_tail(self) -> str:
        log = self._own_errlog
        if log is None or log.closed:
            return ""
        try:
            log.flush()
            log.seek(0)
            text = log.read()
        except (OSError, ValueError):
            return ""
        return text[-_STDERR_TAIL:].strip()

    def _translate(self, exc: BaseException) -> McpError | None:
        """The McpError for an SDK failure (``None`` for cancellation)."""
        if isinstance(exc, BaseExceptionGroup):
            inner = [self._translate(e) for e in exc.exceptions]
            found = [e for e in inner if e is not None]
            return found[0] if found else None
        if isinstance(exc, McpError):
            return exc
        if isinstance(exc, ConjureError | anyio.get_cancelled_exc_class()):
            return None
        tail = self._stderr_tail()
        stderr = f"; its stderr ends with:\n{tail}" if tail else ""
        if isinstance(exc, TimeoutError):
            message = f"no answer to initialize within {self.connect_timeout:g}s"
            return McpError(message + stderr, target=self.target)
        if isinstance(exc, MCPError):
            failure = McpError(
                f"{exc.error.message} (JSON-RPC error {exc.error.code}){stderr}",
                target=self.target,
                code=exc.error.code,
            )
        elif isinstance(exc, FileNotFoundError | PermissionError):
            failure = McpError(f"cannot start: {exc}", target=self.target)
        elif isinstance(exc, httpx2.HTTPError | OSError):
            failure = McpError(f"cannot connect: {exc!r}", target=self.target)
        elif isinstance(exc, Exception):
            failure = McpError(f"failed: {exc!r}{stderr}", target=self.target)
        else:
            return None
        failure.__cause__ = exc
        return failure

    def _client(self) -> ClientSession:
        """The SDK session of the connection (for the Skills extension's requests)."""
        if self._session is None:
            raise self._failure or McpError("not connected", target=self.target)
        return self._session

    # -- tools -------------------------------------------------------------

    def tools(self) -> Sequence[ToolDefinition]:
        """The server's tools under the names the model sees (none before it first connected)."""
        return list(self._definitions or ())

    def prompt_notes(self) -> str | None:
        """No notes: the tools describe themselves."""
        return None

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Call the server's tool; cancelling the generator cancels the call on the server."""
        session = self._session
        if session is None:
            raise self._failure or McpError("not connected", target=self.target)
        assert self._names is not None
        original = self._names.get(call.name)
        if original is None:
            yield ToolResult(output=f"Unknown MCP tool {call.name!r}", is_error=True)
            return
        try:
            result = await session.call_tool(original, call.input)
        except MCPError as exc:
            if exc.error.code == _CONNECTION_CLOSED or self._session is None:
                failure = self._failure or self._translate(exc)
                assert failure is not None
                raise failure from exc
            ctx.logger.debug("mcp.call_error", code=exc.error.code)
            yield ToolResult(
                output=f"MCP error {exc.error.code}: {exc.error.message}", is_error=True
            )
            return
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise self._failure or McpError(
                "the connection closed during the call", target=self.target
            ) from exc
        output, is_error = result_content(result)
        yield ToolResult(output=output, is_error=is_error)
