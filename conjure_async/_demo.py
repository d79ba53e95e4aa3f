"""``conjure demo``: a real run of the example skills, offline, with no API key.

The model is :class:`~conjure_async.testing.ScriptedModel` (scripted, not
Claude): it plays the turns Claude would take, while the tools run for real
through the Local backend, and every event is printed as it streams.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path
from typing import Any

from conjure_async._console import Write, format_event, stdout_write
from conjure_async._session import Session
from conjure_async.backends._local import LocalBackend
from conjure_async.events import Event
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolResultBlock
from conjure_async.skills import Skill, available_skills_block, estimate_tokens, load_skills
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

__all__ = ["examples_dir", "run_demo", "run_local_demo"]


def examples_dir() -> Path:
    """The repository's ``examples`` folder (the demo runs from a source checkout)."""
    return Path(__file__).resolve().parent.parent / "examples"


def _last_tool_output(request: MessagesRequest) -> str:
    content = request.messages[-1].content
    if isinstance(content, list):
        for block in content:
            if isinstance(block, ToolResultBlock) and isinstance(block.content, str):
                return block.content
    return ""


def _analyst_script(skill: Skill, log: Path) -> list[Any]:
    """The turns a model would take to use the log-analyzer skill."""
    skill_md = str(skill.path.resolve() / "SKILL.md")
    script = shlex.quote(str(skill.path.resolve() / "scripts" / "analyze.py"))
    command = f"python3 {script} {shlex.quote(str(log))} --format text --top 3"

    def report(request: MessagesRequest) -> MessagesResponse:
        summary = _last_tool_output(request)
        return tool_use_response(
            tool_call(
                "create_file",
                {
                    "path": "report.md",
                    "file_text": f"# Log report\n\n```\n{summary.strip()}\n```\n",
                    "description": "Write the summary to a report",
                },
            ),
            text="Writing the report.",
        )

    return [
        tool_use_response(
            tool_call("view", {"path": skill_md}),
            text="I'll read the log-analyzer skill first.",
        ),
        tool_use_response(
            tool_call("bash_tool", {"command": command, "description": "Summarize the log"}),
            text="Now I run its analyzer on the log.",
        ),
        report,
        text_response("The report is in report.md: see the error counts per service above."),
    ]


async def run_local_demo(write: Write | None = None) -> list[Event]:
    """Validate the example skills, then run a Local-backend session on them.

    ``write`` receives the output text (default: standard output). Returns the
    events of the chat (the demo's test checks them).
    """
    out = write or stdout_write

    def print_fn(line: str = "") -> None:
        out(line + "\n")

    root = examples_dir()
    skills = load_skills(root / "skills")
    print_fn(f"Loaded {len(skills)} example skills from {root / 'skills'}:")
    for skill in skills:
        print_fn(f"  - {skill.name}: {skill.description[:70]}...")
    block = available_skills_block(skills)
    print_fn(f"Prompt block: {len(block)} characters, about {estimate_tokens(block)} tokens.")
    print_fn("")
    print_fn("Local backend run (model: ScriptedModel, a scripted stand-in for Claude;")
    print_fn("the tools run for real on this machine):")
    analyzer = next(s for s in skills if s.name == "log-analyzer")
    model = ScriptedModel(_analyst_script(analyzer, root / "data" / "app.log"), text_chunk=12)
    events: list[Event] = []
    async with Session(LocalBackend(skills), model=model) as session:
        print_fn("user> What went wrong in app.log?")
        text_open = False
        async for event in session.stream("What went wrong in app.log?"):
            events.append(event)
            if event.kind == "text_delta":
                out(event.text if text_open else "claude> " + event.text)
                text_open = True
                continue
            if text_open:
                out("\n")
                text_open = False
            line = format_event(event)
            if line:
                print_fn(line)
    return events


async def run_demo(write: Write | None = None) -> int:
    """``conjure demo``: every part that runs offline, one after another.

    1. the example skills validated and a Local-backend session on them;
    2. a hosted-backend run against the in-process *fake* Anthropic server;
    3. the monitoring pipeline (native + local + report stages at once).
    """
    out = write or stdout_write
    out("== 1. Agent Skills on the Local backend ==\n")
    await run_local_demo(out)
    sections: list[tuple[str, str, str]] = [
        (
            "2. The hosted backend against a FAKE Anthropic server (offline, no key)",
            "conjure_async._demo_hosted",
            "run_hosted_demo",
        ),
        (
            "3. The monitoring pipeline: native, local and report stages",
            "examples.monitoring_agent",
            "run_monitoring_demo",
        ),
    ]
    repo = str(examples_dir().parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)  # the examples package lives in the source checkout
    for title, module_name, function_name in sections:
        out(f"\n== {title} ==\n")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            out(f"  (not available in this checkout: {exc})\n")
            continue
        await getattr(module, function_name)(lambda line: out(f"{line}\n"))
    out(
        "\nDemo finished: the local and native tools ran for real on this machine; the "
        "models were scripted, and the hosted container was the fake server.\n"
    )
    return 0
