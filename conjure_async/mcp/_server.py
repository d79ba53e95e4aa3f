"""Skills served over MCP: the Skills extension and the four skill tools on a backend.

:class:`SkillsServer` is a low-level ``mcp.server.Server`` that

* declares the Skills extension (``io.modelcontextprotocol/skills``, SEP-2640)
  in its capabilities and answers ``skills/list`` and ``skills/get``: each
  skill's verbatim frontmatter and the complete manifest of its files (uri,
  ``sha256:`` digest, size);
* serves every file of every skill as a ``skill://<name>/<path>`` resource
  (the bytes read when the server was built, so digests always match);
* offers ``view``, ``create_file``, ``str_replace`` and ``bash_tool``, run by a
  backend (Local or Docker) created for each MCP client connection on its
  first tool call and closed when the connection ends (the SDK's
  per-connection exit stack).

Over stdio one process serves one client: one sandbox for the run, removed
when the client disconnects. Over streamable HTTP a stateful session
(protocol 2025-11-25 and older, ``mcp-session-id``) keeps its sandbox across
calls until the session ends; a client speaking the stateless 2026-07-28
revision has no session, so each of its calls gets a fresh sandbox.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from conjure_async._exceptions import MissingDependencyError
from conjure_async._logging import get_logger
from conjure_async._schema import schema_errors
from conjure_async.backends._base import Backend, BackendContext, ToolCall, ToolContext, ToolResult
from conjure_async.mcp._served import SKILLS_EXTENSION
from conjure_async.skills import Skill, parse_skill_md, skill_tool_definitions

try:
    from mcp import types as mcp_types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError
    from mcp_types import RequestParams
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError("mcp", "mcp") from exc

__all__ = ["SKILLS_EXTENSION", "SkillFile", "SkillsServer"]

BackendFactory = Callable[[list[Skill]], Backend]
_INVALID_PARAMS = -32602
_STATE_KEY = "conjure_async.backend"


@dataclass(frozen=True, slots=True)
class SkillFile:
    """One file of a served skill."""

    uri: str
    data: bytes
    mime_type: str

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the bytes."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


class _ListParams(RequestParams):
    cursor: str | None = None


class _GetParams(RequestParams):
    uri: str | None = None
    name: str | None = None


def _skill_files(skill: Skill) -> list[SkillFile]:
    root = Path(skill.path)
    files: list[SkillFile] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue  # served skills hold regular files only (a link could point anywhere)
        relative = path.relative_to(root).as_posix()
        mime = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        if relative == "SKILL.md":
            mime = "text/markdown"
        files.append(SkillFile(f"skill://{skill.name}/{relative}", path.read_bytes(), mime))
    return files


class SkillsServer:
    """An MCP server publishing skills and running the skill tools on a backend.

    Args:
        skills: The skills to publish (e.g. ``load_skills("skills")``).
        backend: ``"local"``, ``"docker"``, or a callable building a fresh
            backend from the skills (one per MCP client connection).
        name: The server name reported in ``initialize``.
        tool_timeout: Seconds one tool call may run before it is stopped.
    """

    def __init__(
        self,
        skills: Iterable[Skill],
        *,
        backend: str | BackendFactory = "local",
        name: str = "conjure-skills",
        tool_timeout: float = 120.0,
    ) -> None:
        self.skills = list(skills)
        self._factory = _factory(backend)
        self.tool_timeout = tool_timeout
        self._log = get_logger(component="mcp.server")
        self._files = {s.name: _skill_files(s) for s in self.skills}
        self._by_uri = {f.uri: f for files in self._files.values() for f in files}
        self._definitions = {d.name: d for d in skill_tool_definitions()}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stdio_stack: AsyncExitStack | None = None
        self._stdio_state: dict[str, Any] = {}
        self.server: Server[Any] = Server(
            name,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
        )
        self.server.extensions[SKILLS_EXTENSION] = {"directoryRead": False}
        self.server.add_request_handler("skills/list", _ListParams, self._skills_list)
        self.server.add_request_handler("skills/get", _GetParams, self._skills_get)

    # -- the Skills extension -------------------------------------------------

    def entry(self, skill: Skill) -> dict[str, Any]:
        """The extension's ``Skill`` object for ``skill``."""
        skill_md = Path(skill.path) / "SKILL.md"
        frontmatter, _, _ = parse_skill_md(skill_md.read_text(encoding="utf-8"), str(skill_md))
        return {
            "uri": f"skill://{skill.name}/SKILL.md",
            "frontmatter": frontmatter,
            "resources": [
                {"uri": f.uri, "digest": f.digest, "size": len(f.data)}
                for f in self._files[skill.name]
            ],
        }

    async def _skills_list(self, ctx: Any, params: _ListParams) -> dict[str, Any]:
        del ctx, params
        return {"skills": [self.entry(s) for s in self.skills]}

    async def _skills_get(self, ctx: Any, params: _GetParams) -> dict[str, Any]:
        del ctx
        for skill in self.skills:
            if params.name == skill.name or params.uri == f"skill://{skill.name}/SKILL.md":
                return {"skill": self.entry(skill)}
        raise MCPError(_INVALID_PARAMS, f"no skill {params.uri or params.name!r} on this server")

    async def _list_resources(self, ctx: Any, params: Any) -> mcp_types.ListResourcesResult:
        del ctx, params
        return mcp_types.ListResourcesResult(
            resources=[
                mcp_types.Resource(
                    uri=f.uri,
                    name=f.uri.removeprefix("skill://"),
                    mime_type=f.mime_type,
                    size=len(f.data),
                )
                for f in self._by_uri.values()
            ]
        )

    async def _read_resource(
        self, ctx: Any, params: mcp_types.ReadResourceRequestParams
    ) -> mcp_types.ReadResourceResult:
        del ctx
        found = self._by_uri.get(str(params.uri))
        if found is None:
            raise MCPError(_INVALID_PARAMS, f"no resource {params.uri}")
        return mcp_types.ReadResourceResult(contents=[_contents(found)])

    # -- the skill tools ------------------------------------------------------

    async def _list_tools(self, ctx: Any, params: Any) -> mcp_types.ListToolsResult:
        del ctx, params
        return mcp_types.ListToolsResult(
            tools=[
                mcp_types.Tool(
                    name=d.name, description=d.description, input_schema=dict(d.input_schema)
                )
                for d in self._definitions.values()
            ]
        )

    async def _call_tool(
        self, ctx: Any, params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        definition = self._definitions.get(params.name)
        if definition is None:
            return _error(f"Unknown tool {params.name!r}; tools: {sorted(self._definitions)}")
        arguments = dict(params.arguments or {})
        problems = schema_errors(arguments, definition.input_schema)
        if problems:
            return _error(f"Invalid arguments for {params.name}: " + "; ".join(problems))
        backend = await self._backend_for(ctx)
        call_id = f"mcp_{uuid.uuid4().hex[:16]}"
        tool_ctx: ToolContext[None] = ToolContext(
            session_id="mcp",
            call_id=call_id,
            tool_name=params.name,
            logger=self._log.bind(call_id=call_id, tool=params.name),
            deps=None,
        )
        result: ToolResult | None = None
        with anyio.move_on_after(self.tool_timeout):
            events = backend.run_tool(ToolCall(call_id, params.name, arguments), tool_ctx)
            async for event in events:
                if isinstance(event, ToolResult):
                    result = event
        if result is None:
            return _error(f"[timed out after {self.tool_timeout:g}s; the tool was stopped]")
        return mcp_types.CallToolResult(content=_blocks(result.output), is_error=result.is_error)

    async def _backend_for(self, ctx: Any) -> Backend:
        """The backend of the caller's client, created and opened on first use.

        Over stdio the process serves one client: one backend for the whole run.
        Otherwise the backend belongs to the request's connection (an HTTP
        session) and closes with it.
        """
        if self._stdio_stack is not None:
            state, stack = self._stdio_state, self._stdio_stack
        else:
            # The SDK gives a request its connection only through the session's private
            # attribute; its public exit_stack/state are what per-client resources need.
            connection = ctx.session._connection
            state, stack = connection.state, connection.exit_stack
        lock = state.setdefault(_STATE_KEY + ".lock", anyio.Lock())
        async with lock:
            backend: Backend | None = state.get(_STATE_KEY)
            if backend is None:
                assert self._task_group is not None, "SkillsServer.running() is not entered"
                backend = self._factory(self.skills)
                session_id = uuid.uuid4().hex[:12]
                await backend.open(
                    BackendContext(
                        session_id=session_id,
                        task_group=self._task_group,
                        logger=self._log.bind(session_id=session_id, backend=backend.kind),
                    )
                )
                stack.push_async_callback(backend.aclose)
                state[_STATE_KEY] = backend
            return backend

    # -- running --------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        del server
        async with self.running():
            yield {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Hold the task group the backends get (entered by the server's lifespan).

        Nested entries share the outer one.
        """
        if self._task_group is not None:
            yield
            return
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield
            finally:
                self._task_group = None
                tg.cancel_scope.cancel()

    async def serve_stdio(self) -> None:
        """Serve one client over this process's stdin and stdout until it disconnects."""
        from mcp.server.stdio import stdio_server  # noqa: PLC0415 - only this transport needs it

        async with AsyncExitStack() as stack, stdio_server() as (read, write):
            self._stdio_stack, self._stdio_state = stack, {}
            try:
                await self.server.run(read, write, self.server.create_initialization_options())
            finally:
                self._stdio_stack = None
                with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                    await stack.aclose()

    def asgi_app(self, path: str = "/mcp", *, host: str = "127.0.0.1") -> Any:
        """A Starlette app serving streamable HTTP at ``path`` (its lifespan must run).

        Mounted inside another app, run ``self.server.session_manager.run()``
        in that app's lifespan (a mounted app's own lifespan does not run).
        """
        return self.server.streamable_http_app(streamable_http_path=path, host=host)

    async def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/mcp",
        *,
        ready: Callable[[int], None] | None = None,
    ) -> None:
        """Serve streamable HTTP on ``host:port`` until cancelled.

        ``port=0`` picks a free port; ``ready`` is called with the bound port.
        """
        import socket  # noqa: PLC0415 - only this transport needs it

        try:
            import uvicorn  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise MissingDependencyError("uvicorn", "demo") from exc
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog from now on, not refused
        if ready is not None:
            ready(sock.getsockname()[1])
        config = uvicorn.Config(self.asgi_app(path, host=host), log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        try:
            await server.serve([sock])
        finally:
            sock.close()


def _factory(backend: str | BackendFactory) -> BackendFactory:
    if callable(backend):
        return backend
    if backend == "local":
        from conjure_async.backends import LocalBackend  # noqa: PLC0415 - one import per choice

        return LocalBackend
    if backend == "docker":
        from conjure_async.backends import DockerBackend  # noqa: PLC0415 - needs [docker]

        return DockerBackend
    raise ValueError(f"backend must be 'local', 'docker' or a callable, not {backend!r}")


def _contents(found: SkillFile) -> Any:
    if found.mime_type.startswith("text/") or found.uri.endswith((".md", ".py", ".sh", ".txt")):
        try:
            text = found.data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if not text.startswith("\ufeff"):
                return mcp_types.TextResourceContents(
                    uri=found.uri, mime_type=found.mime_type, text=text
                )
    import base64  # noqa: PLC0415 - only for binary files

    return mcp_types.BlobResourceContents(
        uri=found.uri, mime_type=found.mime_type, blob=base64.b64encode(found.data).decode()
    )


def _error(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=text)], is_error=True)


def _blocks(output: str | list[dict[str, Any]]) -> list[Any]:
    if isinstance(output, str):
        return [mcp_types.TextContent(text=output)]
    blocks: list[Any] = []
    for block in output:
        if block.get("type") == "image" and isinstance(block.get("source"), dict):
            source = block["source"]
            blocks.append(
                mcp_types.ImageContent(data=source["data"], mime_type=source["media_type"])
            )
        else:
            blocks.append(mcp_types.TextContent(text=str(block.get("text", ""))))
    return blocks
