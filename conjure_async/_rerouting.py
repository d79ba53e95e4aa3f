"""A session's names checked again once its backends have opened.

A :class:`~conjure_async.Session` routes tool calls by name, from the tool
lists its backends give when the session is built. Some backends learn their
tools only when they open: an :class:`~conjure_async.mcp.McpBackend` lists its
server's tools when it connects, which it does in the session's task group,
and an :class:`~conjure_async.mcp.McpSkillsBackend` builds the backend running
its skills then. :func:`check_opened` runs once the backends are open: it
checks the skill names again and, when a tool list changed, re-routes the
tools (the engine's tool specs, the definitions sent to the model, the tool
runner's routes); the engine keeps its conversation. Sessions whose backends
knew their tools pay one comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conjure_async._engine import ToolSpec
from conjure_async._names import check_skill_names, tool_routes
from conjure_async._tool_execution import ToolRunner

if TYPE_CHECKING:
    from conjure_async._session import Session

__all__ = ["check_opened"]


def check_opened(session: Session[Any]) -> None:
    """Check ``session``'s skill names; route its tools from the backends' current lists.

    Raises:
        SkillConflictError: Two skills now share a name.
        ToolConflictError: Two backends now offer a tool of one name.
    """
    check_skill_names(session.backends)
    routes = tool_routes(session.backends)
    if routes == session._routes:
        return
    engine, old_runner = session._engine, session._tools
    # The engine keeps its history, usage, files and any turn it holds (a stored
    # conversation awaiting approval): only what it routes to changes.
    engine._specs = {
        name: ToolSpec(name, b.kind, d.input_schema) for name, (b, d) in routes.items()
    }
    engine._checks = {}
    session._routes = routes
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
