"""A fake model whose answer is a function of the request (any worker answers alike).

A script kept in process memory would start over on a new worker; this one
reads the request: the last user message says what to do.

* user text ``bash: CMD``   -> a ``bash_tool`` call running ``CMD``
* user text ``add: A B``    -> a native ``add`` call
* user text ``say: TEXT``   -> the text ``TEXT``
* user text ``steps: N CMD`` -> ``N`` ``bash_tool`` calls of ``CMD`` one after another
  (with ``{i}`` replaced by the step number), then ``done``
* user text ``blobs: N SIZE`` -> ``N`` native ``blob`` calls of ``SIZE`` characters one
  after another, then ``done``
* tool results              -> ``got: <the results' text>`` (or the next step)

``tool_use`` ids are derived from the conversation so far, so a retried call
gets the same id.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from conjure_async.messages import MessagesRequest, MessagesResponse


def _id(request: MessagesRequest) -> str:
    digest = hashlib.sha256(str(len(request.messages)).encode())
    digest.update(request.messages[0].model_dump_json().encode())
    return f"toolu_{digest.hexdigest()[:16]}"


def _text(block: Any) -> str:
    content = block.content if hasattr(block, "content") else ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content)


def _first_user_text(request: MessagesRequest, after: int) -> tuple[int, str]:
    """The last user text message at or before index ``after`` (its index and text)."""
    for index in range(after, -1, -1):
        message = request.messages[index]
        if message.role == "user":
            texts = (
                [b.text for b in message.content if getattr(b, "type", "") == "text"]
                if not isinstance(message.content, str)
                else [message.content]
            )
            if texts:
                return index, texts[-1]
    return 0, ""


def _response(content: list[dict[str, Any]], stop: str) -> MessagesResponse:
    return MessagesResponse.model_validate(
        {
            "id": "msg_fake",
            "model": "fake",
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


def _call(request: MessagesRequest, name: str, arguments: dict[str, Any]) -> MessagesResponse:
    block = {"type": "tool_use", "id": _id(request), "name": name, "input": arguments}
    return _response([block], "tool_use")


async def fake_model(request: MessagesRequest) -> MessagesResponse:
    """Answer as a function of the request (see the module docstring)."""
    last = request.messages[-1]
    start, command = _first_user_text(request, len(request.messages) - 1)
    results = (
        []
        if isinstance(last.content, str)
        else [b for b in last.content if getattr(b, "type", "") == "tool_result"]
    )
    if command.startswith("steps: "):
        count_text, template = command[len("steps: ") :].split(" ", 1)
        done = (len(request.messages) - 1 - start) // 2
        if done < int(count_text):
            return _call(
                request,
                "bash_tool",
                {"command": template.replace("{i}", str(done + 1)), "description": "a step"},
            )
        return _response([{"type": "text", "text": "done"}], "end_turn")
    if command.startswith("blobs: "):
        count, size = (int(part) for part in command[len("blobs: ") :].split())
        done = (len(request.messages) - 1 - start) // 2
        if done < count:
            return _call(request, "blob", {"size": size, "seed": done})
        return _response([{"type": "text", "text": "done"}], "end_turn")
    if results:
        return _response(
            [{"type": "text", "text": "got: " + " | ".join(_text(b) for b in results)}], "end_turn"
        )
    if command.startswith("bash: "):
        return _call(
            request, "bash_tool", {"command": command[len("bash: ") :], "description": "a command"}
        )
    if match := re.fullmatch(r"add: (-?\d+) (-?\d+)", command):
        return _call(request, "add", {"a": int(match.group(1)), "b": int(match.group(2))})
    if command.startswith("say: "):
        return _response([{"type": "text", "text": command[len("say: ") :]}], "end_turn")
    return _response([{"type": "text", "text": f"unknown: {command}"}], "end_turn")
