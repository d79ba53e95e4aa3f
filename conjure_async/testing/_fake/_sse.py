"""The Messages API's stream: a whole message told as its server-sent events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conjure_async.messages import MessagesResponse

__all__ = ["frame", "message_stream_events"]

_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def _chunks(text: str, size: int) -> list[str]:
    if not text:
        return []
    size = max(size, 1)
    return [text[i : i + size] for i in range(0, len(text), size)]


def message_stream_events(
    response: MessagesResponse | Mapping[str, Any],
    *,
    text_chunk_size: int = 8,
    json_chunk_size: int = 16,
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` sequence the Messages API streams for ``response``.

    Text arrives as ``text_delta`` pieces of ``text_chunk_size`` characters,
    tool inputs as ``input_json_delta`` pieces of ``json_chunk_size``; server
    tool results and unknown blocks arrive whole in ``content_block_start``.
    The container and stop reason come in ``message_delta``.
    """
    message = response.to_wire() if isinstance(response, MessagesResponse) else dict(response)
    events = [_message_start(message), ("ping", {"type": "ping"})]
    for index, raw in enumerate(message.get("content") or []):
        block, deltas = _block_and_deltas(dict(raw), text_chunk_size, json_chunk_size)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(_message_delta(message))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _message_start(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``message_start``: the message without content, stop reason or output tokens."""
    usage = dict(message.get("usage") or {})
    start: dict[str, Any] = {
        "id": message.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": message.get("model", ""),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": 1,
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        },
    }
    if "cache_creation" in usage:
        start["usage"]["cache_creation"] = usage["cache_creation"]
    return "message_start", {"type": "message_start", "message": start}


def _block_and_deltas(
    block: dict[str, Any], text_chunk_size: int, json_chunk_size: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A content block as ``content_block_start`` shows it, and the deltas that fill it."""
    kind = block.get("type")
    if kind == "text":
        pieces = _chunks(str(block.get("text", "")), text_chunk_size)
        return {**block, "text": ""}, [{"type": "text_delta", "text": p} for p in pieces]
    if kind == "thinking":
        pieces = _chunks(str(block.get("thinking", "")), text_chunk_size)
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {**block, "thinking": "", "signature": ""}, deltas
    if kind == "compaction":  # the whole summary in one delta
        delta = {
            "type": "compaction_delta",
            "content": block.get("content"),
            "encrypted_content": block.get("encrypted_content"),
        }
        return {**block, "content": None, "encrypted_content": None}, [delta]
    if kind in _JSON_INPUT_BLOCKS:
        pieces = ["", *_chunks(json.dumps(block.get("input") or {}), json_chunk_size)]
        return {**block, "input": {}}, [
            {"type": "input_json_delta", "partial_json": p} for p in pieces
        ]
    return block, []  # server tool results and unknown blocks arrive whole


def _message_delta(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``message_delta``: the stop reason, the container, the output tokens, the applied edits."""
    delta: dict[str, Any] = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    if message.get("container") is not None:
        delta["container"] = message["container"]
    usage = dict(message.get("usage") or {})
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": delta,
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    if "iterations" in usage:
        final["usage"]["iterations"] = usage["iterations"]
    if message.get("context_management") is not None:
        final["context_management"] = message["context_management"]
    return "message_delta", final


def frame(event: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: ...``, ``data: <json>``, a blank line."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
