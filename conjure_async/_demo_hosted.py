"""A hosted-backend demo against the in-process FAKE Anthropic server (for ``conjure demo``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conjure_async._session import Session
from conjure_async.backends._hosted import AnthropicBackend, AnthropicSkill
from conjure_async.events import Event
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import FakeAnthropicServer

__all__ = ["run_hosted_demo"]

_KEY = "fake-key-for-the-demo"


def _script(file_id: str) -> list[dict[str, Any]]:
    usage = {"input_tokens": 1200, "output_tokens": 80}
    return [
        {
            "content": [
                {"type": "text", "text": "I'll build the workbook with the xlsx skill."},
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_demo1",
                    "name": "bash_code_execution",
                    "input": {"command": "ls /skills/xlsx"},
                },
            ],
            "stop_reason": "pause_turn",
            "usage": usage,
        },
        {
            "content": [
                {
                    "type": "bash_code_execution_tool_result",
                    "tool_use_id": "srvtoolu_demo1",
                    "content": {
                        "type": "bash_code_execution_result",
                        "stdout": "SKILL.md\nrecalc.py\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [],
                    },
                },
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_demo2",
                    "name": "bash_code_execution",
                    "input": {"command": "python3 make_budget.py --out /mnt/outputs/budget.xlsx"},
                },
                {
                    "type": "bash_code_execution_tool_result",
                    "tool_use_id": "srvtoolu_demo2",
                    "content": {
                        "type": "bash_code_execution_result",
                        "stdout": "saved /mnt/outputs/budget.xlsx (3 sheets)\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [{"type": "bash_code_execution_output", "file_id": file_id}],
                    },
                },
            ],
            "stop_reason": "pause_turn",
            "usage": usage,
        },
        {
            "content": [
                {
                    "type": "text",
                    "text": "Your budget workbook is ready: budget.xlsx, with a sheet per quarter.",
                },
            ],
            "stop_reason": "end_turn",
            "usage": usage,
        },
    ]


def _describe(event: Event) -> str | None:
    match event.kind:
        case "tool_started":
            return f"  -> {event.name} {event.input} (on {event.backend})"
        case "tool_finished":
            status = "error" if event.is_error else f"exit {event.exit_code}"
            output = " | ".join(event.output.strip().splitlines())
            return f"  <- {event.name}: {status}: {output}"
        case "file_created":
            return f"  file created in the container: {event.file.name} ({event.file.file_id})"
        case "paused":
            return f"  [pause_turn #{event.count}: the session continues the turn]"
        case "turn_finished":
            usage = event.reply.usage
            return (
                f"  turn finished ({event.reply.stop_reason}, {event.reply.iterations} model "
                f"calls, {usage.input_tokens} in / {usage.output_tokens} out tokens)"
            )
        case _:
            return None


async def run_hosted_demo(print_fn: Callable[[str], None]) -> None:
    """Run a short scripted hosted session against a FAKE Anthropic server and print it.

    Nothing reaches Anthropic: a :class:`FakeAnthropicServer` on 127.0.0.1
    answers with scripted responses (two ``pause_turn`` continuations, bash
    runs in the "container", one of which creates a file, streamed text). The real stack runs
    against it: :class:`AnthropicModel` over HTTP with SSE streaming, the
    :class:`AnthropicBackend` with the ``xlsx`` skill, the session loop, and
    the Files API for the created file's name.

    Args:
        print_fn: Receives each line of output (e.g. ``print``).
    """
    print_fn("Hosted backend demo against a FAKE Anthropic server (nothing is sent to Anthropic;")
    print_fn("the answers are scripted). Set ANTHROPIC_API_KEY and use `conjure chat --backend")
    print_fn("anthropic` to talk to the real API.")
    async with FakeAnthropicServer(api_key=_KEY, text_chunk_size=12) as server:
        file_id = server.add_file(
            b"PK\x03\x04 fake workbook bytes",
            "budget.xlsx",
            mime_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        server.queue(*_script(file_id))
        print_fn(f"fake server: {server.base_url}")
        async with AnthropicModel("claude-demo", api_key=_KEY, base_url=server.base_url) as model:
            backend = AnthropicBackend([AnthropicSkill("xlsx")], api=model.api)
            async with Session(backend, model=model) as session:
                print_fn("you: Build a 2027 budget workbook")
                line: list[str] = []
                async for event in session.stream("Build a 2027 budget workbook"):
                    if event.kind == "text_delta":
                        line.append(event.text)
                        continue
                    if line:
                        print_fn("claude: " + "".join(line))
                        line = []
                    text = _describe(event)
                    if text:
                        print_fn(text)
                if line:
                    print_fn("claude: " + "".join(line))
                for created in session.files:
                    info = await backend.file_info(created)
                    print_fn(
                        f"file {info.id}: {info.filename} ({info.size_bytes} bytes), "
                        "downloadable through the Files API"
                    )
        requests = len(server.message_requests)
        print_fn(f"The fake server received {requests} Messages requests (each pause_turn was")
        print_fn("continued in the same container).")
