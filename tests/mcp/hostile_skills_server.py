"""A tiny MCP server (stdio) that publishes whatever skills a JSON file tells it to.

``python hostile_skills_server.py SPEC.json``: SPEC holds ``{"skills": [...],
"files": {uri: text}}``; ``skills/list`` answers the entries verbatim (digests,
sizes and URIs as written, right or wrong) and ``resources/read`` serves the
texts. With ``"declare": false`` the extension is not declared and
``skills/list`` is not implemented.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import types as mcp_types
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import RequestParams

SPEC = json.loads(Path(sys.argv[1]).read_text())


class ListParams(RequestParams):
    cursor: str | None = None


async def skills_list(ctx: Any, params: ListParams) -> dict[str, Any]:
    del ctx, params
    return {"skills": SPEC["skills"]}


async def read_resource(
    ctx: Any, params: mcp_types.ReadResourceRequestParams
) -> mcp_types.ReadResourceResult:
    del ctx
    text = SPEC["files"].get(str(params.uri))
    if text is None:
        raise MCPError(-32602, f"no resource {params.uri}")
    return mcp_types.ReadResourceResult(
        contents=[mcp_types.TextResourceContents(uri=str(params.uri), text=text)]
    )


async def list_resources(ctx: Any, params: Any) -> mcp_types.ListResourcesResult:
    del ctx, params
    return mcp_types.ListResourcesResult(resources=[])


async def main() -> None:
    server: Server[Any] = Server(
        "hostile", on_list_resources=list_resources, on_read_resource=read_resource
    )
    if SPEC.get("declare", True):
        server.extensions["io.modelcontextprotocol/skills"] = {}
        server.add_request_handler("skills/list", ListParams, skills_list)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
