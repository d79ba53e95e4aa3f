"""The monitoring pipeline: fetch natively, analyze locally, report - concurrently.

::

    log API ──httpx2──► [api]     Session(native log-fetcher + local log-analyzer) ─┐
    (127.0.0.1)        [worker]  Session(native log-fetcher + local log-analyzer) ─┼─► report
                       [billing] Session(native log-fetcher + local log-analyzer) ─┘   Session
                                                                          (hosted container)

The per-service stages run at once in one task group, each *isolated*: a stage
that crashes (a model API error, a timeout) is reported as failed and the
others go on. A tool that fails (the billing log shard answers 503) is not a
crash: the model reads the error and says so.

The report stage runs on the hosted backend: the model writes ``report.md`` in
an Anthropic code execution container and the pipeline downloads it through
the Files API. Offline (no ``ANTHROPIC_API_KEY``) the service stages use
``ScriptedModel`` (scripted, not Claude) and the report stage talks HTTP to a
``FakeAnthropicServer`` (which plays the container) through
``AnthropicModel``, and the run says so first (:data:`OFFLINE_NOTICE`); with a
key every stage uses Claude.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2

from conjure_async import Reply, Session, load_skills
from conjure_async.backends import AnthropicBackend, LocalBackend, NativeBackend
from conjure_async.events import CreatedFile
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolResultBlock
from conjure_async.models import AnthropicModel, ApiCallback
from conjure_async.skills import Skill
from conjure_async.testing import (
    FakeAnthropicServer,
    ScriptedModel,
    text_response,
    tool_call,
    tool_use_response,
)

from .log_api import SERVICES, serve_log_api
from .skills import FetchDeps, LogFetcher

__all__ = ["MonitoringResult", "ServiceOutcome", "main", "run_monitoring_demo"]

ANALYZER = Path(__file__).resolve().parents[1] / "skills" / "log-analyzer"
"""The ``log-analyzer`` example skill, run by the local backend."""

PrintFn = Callable[[str], object]

SERVICE_SYSTEM = "You are an on-call assistant. Be brief and exact; quote counts."
SERVICE_PROMPT = (
    "Fetch the logs of the '{service}' service with the log-fetcher skill "
    "(command: fetch {service}), analyze the saved {service}.log with the log-analyzer "
    "skill, and answer with one line starting with '{service}:' that gives the line "
    "count, the error count and the most frequent error. If the logs cannot be "
    "fetched, say so in that line."
)
OFFLINE_NOTICE = (
    "Offline run: the models are SCRIPTED (ScriptedModel plays Claude's turns from a script),",
    "and the report's code execution container is a FAKE Anthropic server on 127.0.0.1.",
    "Real: the log API, the native fetches and the local log analysis.",
    "Set ANTHROPIC_API_KEY to use Claude instead.",
)
"""What an offline run says first: which parts are scripted or fake, which are real."""

REPORT_PROMPT = (
    "Write a short Markdown monitoring report (a title, one bullet per service, then "
    "one line of advice) from these per-service findings, save it in the code "
    "execution container as /mnt/outputs/report.md, then reply with one sentence."
    "\n\nFindings:\n{findings}"
)


@dataclasses.dataclass(frozen=True)
class ServiceOutcome:
    """What one service stage produced."""

    service: str
    summary: str | None = None
    """The stage's one-line finding (when the stage finished)."""
    error: str | None = None
    """``"ExcType: message"`` when the stage itself failed."""

    @property
    def finding(self) -> str:
        """The line handed to the report stage."""
        return self.summary or f"{self.service}: stage failed - {self.error}"


@dataclasses.dataclass(frozen=True)
class MonitoringResult:
    """The outcome of :func:`run_monitoring_demo`."""

    services: dict[str, ServiceOutcome]
    """One outcome per service, in the order asked."""
    report: str
    """The report's Markdown (the model's reply when it saved no file)."""
    files: list[CreatedFile]
    """Every file the pipeline's tools created, tagged with their backend."""
    offline: bool
    """True when scripted models and the fake Anthropic server were used."""


# -- scripted models (offline) ---------------------------------------------------


def _tool_results(request: MessagesRequest) -> list[tuple[str, bool]]:
    """The tool results the request's last (user) message carries."""
    content = request.messages[-1].content
    if isinstance(content, str):
        return []
    results = []
    for block in content:
        if isinstance(block, ToolResultBlock):
            text = block.content if isinstance(block.content, str) else json.dumps(block.content)
            results.append((text, bool(block.is_error)))
    return results


def _summary(service: str, analyzer_output: str) -> str:
    try:
        data = json.loads(analyzer_output)
    except ValueError:
        return f"{service}: the analyzer failed - {analyzer_output.strip()[:200]}"
    levels: Mapping[str, int] = data["levels"]
    errors = sum(n for level, n in levels.items() if level in ("ERROR", "FATAL"))
    top = data["top_errors"][0] if data["top_errors"] else None
    most = f'most frequent: "{top["msg"]}" ({top["count"]}x)' if top else "no errors"
    return f"{service}: {data['lines']} lines, {errors} errors, {most}"


def scripted_service_model(service: str, analyzer: Skill) -> ScriptedModel:
    """A model that fetches, analyzes, then summarizes like Claude would."""
    script = analyzer.path / "scripts" / "analyze.py"

    def respond(request: MessagesRequest) -> MessagesResponse:
        step = sum(1 for m in request.messages if m.role == "assistant")
        results = _tool_results(request)
        if step == 0:
            fetch = tool_call("log_fetcher_execute", {"command": f"fetch {service}"})
            return tool_use_response(fetch, text=f"Fetching the {service} logs.")
        if step == 1:
            text, is_error = results[0]
            if is_error:
                return text_response(f"{service}: logs unavailable ({text})")
            command = f"python3 {script} {service}.log --format json"
            analyze = tool_call("bash_tool", {"command": command, "description": "Analyze"})
            return tool_use_response(analyze, text="Analyzing the log.")
        return text_response(_summary(service, results[0][0]))

    return ScriptedModel(respond)


def _report_markdown(findings: str) -> str:
    bullets = [line for line in findings.splitlines() if line.startswith("- ")]
    failing = [b for b in bullets if "unavailable" in b or "stage failed" in b]
    advice = (
        f"Check {len(failing)} service(s) whose logs could not be analyzed."
        if failing
        else "All services analyzed; look at the most frequent errors first."
    )
    return "\n".join(["# Monitoring report", "", *bullets, "", advice, ""])


def hosted_report_answer(server: FakeAnthropicServer) -> Callable[[dict[str, Any]], Any]:
    """The fake server's part: run the report code "in the container", then confirm.

    One response, as the hosted API gives it: a ``bash_code_execution`` call,
    its result naming the file it created (stored in the fake Files API), and
    the final text.
    """

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        findings = body["messages"][0]["content"]
        if isinstance(findings, list):  # text blocks (a prompt-caching breakpoint makes them)
            findings = "".join(b.get("text", "") for b in findings if b.get("type") == "text")
        content = _report_markdown(findings if isinstance(findings, str) else "")
        file_id = server.add_file(content.encode(), "report.md", mime_type="text/markdown")
        command = "cat > /mnt/outputs/report.md <<'EOF'\n" + content + "EOF"
        return {
            "content": [
                {"type": "text", "text": "Writing the report in the container."},
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_report",
                    "name": "bash_code_execution",
                    "input": {"command": command},
                },
                {
                    "type": "bash_code_execution_tool_result",
                    "tool_use_id": "srvtoolu_report",
                    "content": {
                        "type": "bash_code_execution_result",
                        "stdout": "",
                        "stderr": "",
                        "return_code": 0,
                        "content": [{"type": "bash_code_execution_output", "file_id": file_id}],
                    },
                },
                {"type": "text", "text": "The monitoring report is saved as report.md."},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 900, "output_tokens": 120},
        }

    return answer


# -- the stages ----------------------------------------------------------------------


def _brief(value: object, width: int = 70) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


async def _chat(session: Session[Any], prompt: str, label: str, print_fn: PrintFn) -> Reply:
    """Chat, printing tool activity as it happens; return the reply."""
    reply: Reply | None = None
    async for event in session.stream(prompt):
        if event.kind == "tool_started":
            print_fn(f"[{label}] -> {event.name} {_brief(event.input)}")
        elif event.kind == "tool_finished":
            status = "error" if event.is_error else "ok"
            print_fn(f"[{label}] <- {event.name} {status}: {_brief(event.output)}")
        elif event.kind == "turn_finished":
            reply = event.reply
    assert reply is not None
    return reply


async def analyze_service(
    service: str,
    *,
    http: httpx2.AsyncClient,
    workdir: Path,
    analyzer: Skill,
    model: ApiCallback | None,
    print_fn: PrintFn,
) -> tuple[ServiceOutcome, list[CreatedFile]]:
    """One service stage: a session over the native fetcher and the local analyzer."""
    await anyio.Path(workdir).mkdir(parents=True, exist_ok=True)
    backends = [NativeBackend(LogFetcher()), LocalBackend([analyzer], workdir=workdir)]
    async with Session(
        backends,
        model=model or scripted_service_model(service, analyzer),
        deps=FetchDeps(http=http, workdir=workdir),
        system=SERVICE_SYSTEM,
        max_tokens=1024,
        tool_timeout=60,
    ) as session:
        reply = await _chat(session, SERVICE_PROMPT.format(service=service), service, print_fn)
        files = session.files
    line = reply.text.strip().splitlines()[-1] if reply.text.strip() else f"{service}: no answer"
    return ServiceOutcome(service, summary=line), files


async def write_report(
    outcomes: Sequence[ServiceOutcome],
    *,
    output_dir: Path,
    model: AnthropicModel,
    print_fn: PrintFn,
) -> tuple[str, list[CreatedFile]]:
    """The report stage, on the hosted backend: written in the container, then downloaded."""
    findings = "\n".join(f"- {o.finding}" for o in outcomes)
    backend = AnthropicBackend([], api=model.api)
    async with Session[None](backend, model=model, max_tokens=2048) as session:
        reply = await _chat(session, REPORT_PROMPT.format(findings=findings), "report", print_fn)
        files = session.files
        reports = [f for f in files if f.file_id]
        path = await backend.download(reports[-1], output_dir, overwrite=True) if reports else None
    if path is None:
        return reply.text, files
    print_fn(f"[report] downloaded {Path(path).name} through the Files API")
    return await anyio.Path(path).read_text(encoding="utf-8"), files


# -- the whole pipeline ----------------------------------------------------------------


async def _anthropic_model(stack: AsyncExitStack) -> AnthropicModel:
    name = os.environ.get("CONJURE_MODEL")
    client = AnthropicModel(model=name) if name else AnthropicModel()
    return await stack.enter_async_context(client)


async def _fake_anthropic_model(stack: AsyncExitStack) -> AnthropicModel:
    server = FakeAnthropicServer()
    server.queue(hosted_report_answer(server))
    await stack.enter_async_context(server)
    return await stack.enter_async_context(
        AnthropicModel(base_url=server.base_url, api_key="fake-key")
    )


async def run_monitoring_demo(
    print_fn: PrintFn = print,
    *,
    offline: bool | None = None,
    services: Sequence[str] = SERVICES,
    output_dir: Path | None = None,
) -> MonitoringResult:
    """Run the monitoring pipeline end to end; print progress; return the outcome.

    Args:
        print_fn: Where progress lines and the report go (``print`` by default).
        offline: Use scripted models and the fake Anthropic server (default:
            when ``ANTHROPIC_API_KEY`` is not set).
        services: The services to analyze (the demo API knows ``api``,
            ``worker`` and ``billing``; billing's log shard is down).
        output_dir: Where ``report.md`` is saved (default: a temporary
            directory removed at the end; the report text is returned).

    Returns:
        Each service's outcome, the report and the files created.
    """
    if offline is None:
        offline = not os.environ.get("ANTHROPIC_API_KEY")
    for line in OFFLINE_NOTICE if offline else ("Every stage talks to Claude.",):
        print_fn(line)
    analyzer = (await anyio.to_thread.run_sync(load_skills, ANALYZER))[0]
    files: list[CreatedFile] = []
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conjure-monitor-")))
        report_dir = output_dir or root / "report"
        await anyio.Path(report_dir).mkdir(parents=True, exist_ok=True)
        base_url = await stack.enter_async_context(serve_log_api())
        print_fn(f"log API serving {len(SERVICES)} services on {base_url}")
        http = await stack.enter_async_context(httpx2.AsyncClient(base_url=base_url, timeout=10))
        model = None if offline else await _anthropic_model(stack)

        outcomes: dict[str, ServiceOutcome] = {}

        async def isolated(service: str) -> None:
            # Isolation: a crashed stage becomes an outcome; cancellation still propagates.
            try:
                outcome, created = await analyze_service(
                    service,
                    http=http,
                    workdir=root / service,
                    analyzer=analyzer,
                    model=model,
                    print_fn=print_fn,
                )
            except Exception as exc:  # the other stages go on
                print_fn(f"[{service}] stage failed: {type(exc).__name__}: {exc}")
                outcome = ServiceOutcome(service, error=f"{type(exc).__name__}: {exc}")
                created = []
            outcomes[service] = outcome
            files.extend(created)

        async with anyio.create_task_group() as tg:
            for service in services:
                tg.start_soon(isolated, service)
        ordered = [outcomes[s] for s in services]
        for outcome in ordered:
            print_fn(f"finding: {outcome.finding}")

        report_model = model or await _fake_anthropic_model(stack)
        report, created = await write_report(
            ordered, output_dir=report_dir, model=report_model, print_fn=print_fn
        )
        files.extend(created)
    print_fn("")
    print_fn(report.rstrip())
    return MonitoringResult(
        services={o.service: o for o in ordered}, report=report, files=files, offline=offline
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo from the command line (``python -m examples.monitoring_agent``)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.monitoring_agent",
        description="A concurrent monitoring pipeline: per service, a session fetches the "
        "logs natively and analyzes them with a local skill; a hosted session writes the "
        "report. Offline (no ANTHROPIC_API_KEY, or --offline) the models are scripted and "
        "the hosted container is a fake Anthropic server; the tools run for real.",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="use the scripted models and the fake server even when ANTHROPIC_API_KEY is set",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="save report.md in DIR (default: a temporary directory; the report is printed)",
    )
    args = parser.parse_args(argv)
    run = functools.partial(
        run_monitoring_demo, offline=True if args.offline else None, output_dir=args.output_dir
    )
    anyio.run(run)
    return 0
