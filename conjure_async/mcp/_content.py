"""MCP tool results as ``tool_result`` content, and the names the model sees.

Pure functions, no I/O: :func:`result_content` maps a ``CallToolResult`` to what
:class:`~conjure_async.backends.ToolResult` carries; :func:`model_names` maps a
server's tool names to names the Messages API accepts, refusing clashes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from conjure_async._exceptions import McpError

__all__ = ["TOOL_NAME", "model_names", "result_content", "sanitize"]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names the Messages API accepts."""

_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")


def sanitize(text: str) -> str:
    """``text`` with every run of characters a tool name cannot hold replaced by ``_``."""
    return _INVALID.sub("_", text).strip("_") or "mcp"


def model_names(
    server_tools: Iterable[str],
    *,
    prefix: str,
    rename: Mapping[str, str],
    target: str,
) -> dict[str, str]:
    """Map model-facing names to the server's tool names.

    A tool is offered as ``rename[name]`` when given, else ``prefix + name``.

    Raises:
        McpError: A renamed tool does not exist, a name is not a valid tool
            name, or two server tools would be offered under one name.
    """
    tools = list(server_tools)
    unknown = sorted(set(rename) - set(tools))
    if unknown:
        raise McpError(
            f"rename names tools the server does not offer: {unknown} (it offers {sorted(tools)})",
            target=target,
        )
    mapping: dict[str, str] = {}
    for name in tools:
        offered = rename.get(name, prefix + name)
        if not TOOL_NAME.match(offered):
            raise McpError(
                f"tool {name!r} would be offered as {offered!r}, which is not a valid tool "
                "name (letters, digits, '_' and '-', at most 64); map it with rename=",
                target=target,
            )
        other = mapping.get(offered)
        if other is not None:
            raise McpError(
                f"tools {other!r} and {name!r} would both be offered as {offered!r}; "
                "map one with rename=",
                target=target,
            )
        mapping[offered] = name
    return mapping


def result_content(result: Any) -> tuple[str | list[dict[str, Any]], bool]:
    """The ``tool_result`` content of an MCP ``CallToolResult``, and whether it is an error.

    Text blocks stay text, images become image blocks, embedded text resources
    become text; audio, binary resources and resource links are described in a
    text line (the Messages API cannot carry them). Structured content is added
    as JSON text when no text block already carries it. Content made only of
    text is returned as one string.
    """
    blocks: list[dict[str, Any]] = []
    for item in result.content:
        kind = getattr(item, "type", None)
        if kind == "text":
            blocks.append({"type": "text", "text": item.text})
        elif kind == "image":
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": item.mime_type, "data": item.data},
                }
            )
        elif kind == "audio":
            blocks.append({"type": "text", "text": f"[audio content ({item.mime_type}) omitted]"})
        elif kind == "resource":
            inner = item.resource
            text = getattr(inner, "text", None)
            if text is not None:
                blocks.append({"type": "text", "text": text})
            else:
                size = len(getattr(inner, "blob", "") or "") * 3 // 4
                blocks.append(
                    {
                        "type": "text",
                        "text": f"[binary resource {inner.uri} ({inner.mime_type}, "
                        f"~{size} bytes) omitted]",
                    }
                )
        elif kind == "resource_link":
            blocks.append({"type": "text", "text": f"[resource link: {item.uri} ({item.name})]"})
        else:
            blocks.append({"type": "text", "text": f"[unsupported content of type {kind!r}]"})
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        as_json = json.dumps(structured, ensure_ascii=False)
        texts = [b["text"] for b in blocks if b["type"] == "text"]
        if not any(_same_json(t, structured) for t in texts):
            blocks.append({"type": "text", "text": as_json})
    is_error = bool(getattr(result, "is_error", False))
    if all(b["type"] == "text" for b in blocks):
        return "\n".join(b["text"] for b in blocks), is_error
    return blocks, is_error


def _same_json(text: str, value: Any) -> bool:
    """Whether a text block already says what the structured content says."""
    # MCPServer wraps a plain return value as {"result": value} beside its text.
    candidates = [value]
    if isinstance(value, dict) and list(value) == ["result"]:
        candidates.append(value["result"])
    if text in candidates:
        return True
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return parsed in candidates
