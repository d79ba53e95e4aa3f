"""A session's tool routing, read again when its backends have opened.

A :class:`~conjure_async.Session` routes tool calls by name, from the tool
lists its backends give when the session is built. Some backends learn their
tools only when they open: an :class:`~conjure_async.mcp.McpBackend` lists its
server's tools when it connects, which it does in the session's task group.
:func:`reroute_tools` runs once the backends are open: when a tool list
changed, it rebuilds what depends on it (the engine's tool specs, the tool
definitions sent to the model, the tool runner's routes); otherwise it leaves
everything as built, so sessions whose backends knew their tools pay one
comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conjure_async._engine import ToolSpec, TurnEngine
from conjure_async._tool_execution import ToolRunner

if TYPE_CHECKING:
    from conjure_async._session import Session

__all__ = ["reroute_tools"]


def reroute_tools(session: Session[Any]) -> None:
    """Route ``session``'s tools from its backends' current lists (if they changed).

    Raises:
        ToolConflictError: Two backends now offer a tool of one name.
    """
    routes = session._check_tool_names()
    if routes == session._routes:
        return
    old_engine, old_runner = session._engine, session._tools
    engine = TurnEngine(
        [ToolSpec(name, b.kind, d.input_schema) for name, (b, d) in routes.items()],
        max_iterations=old_engine.max_iterations,
        max_pause_continuations=old_engine.max_pause_continuations,
        messages=old_engine.history,  # a restored session's conversation goes on
        usage=old_engine.usage,
        files=old_engine.files,
    )
    session._routes = routes
    session._engine = session._models.engine = engine
    session._models.tool_dicts = [d.to_wire() for _, d in routes.values()]
    session._tools = ToolRunner(
        engine,
        {name: b for name, (b, _) in routes.items()},
        logger=session._log,
        telemetry=session._telemetry,
        deadlines=session._deadlines,
        max_concurrent=old_runner._max_concurrent,
        descriptions={name: d.description for name, (_, d) in routes.items()},
    )
