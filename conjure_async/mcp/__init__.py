"""MCP both ways (the ``[mcp]`` extra: ``pip install 'conjure-async[mcp]'``).

=================  ==========================================================
``McpBackend``     the tools of one MCP server (stdio or streamable HTTP) in a session
``McpSkillsBackend``  skills published by MCP servers, verified, run in a sandbox
``SkillsServer``   skills (the Skills extension) and the skill tools served over MCP
=================  ==========================================================

Importing this package without the extra raises
:class:`~conjure_async.MissingDependencyError` with the pip command.
"""

from __future__ import annotations

from conjure_async._public import publish
from conjure_async.mcp._backend import McpBackend
from conjure_async.mcp._server import SkillsServer
from conjure_async.mcp._skills_backend import McpSkillsBackend

__all__ = ["McpBackend", "McpSkillsBackend", "SkillsServer"]

publish(__name__, {name: globals()[name] for name in __all__})
