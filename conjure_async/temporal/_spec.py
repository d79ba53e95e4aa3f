"""The data a durable session carries between client, workflow and activities.

Everything here is plain JSON-able data (dataclasses of strings, numbers,
lists and dicts), so Temporal's default data converter moves it and a state
snapshot survives continue-as-new. Names of the workflow, its handlers and
its activities are fixed strings: a worker of a later version must find them.
"""

# No "from __future__ import annotations": Temporal reads these hints with
# get_type_hints() in the public module (publish() moves __module__ there).

from dataclasses import dataclass, field
from typing import Any, Final

from conjure_async.backends._base import ToolResult
from conjure_async.events import CreatedFile

__all__ = [
    "ACTIVITY_CLOSE",
    "ACTIVITY_MODEL",
    "ACTIVITY_OPEN",
    "ACTIVITY_TOOL",
    "HOST_BOUND_KINDS",
    "KEPT_TURNS",
    "WORKFLOW_NAME",
    "BackendSpec",
    "ChatRequest",
    "CloseInput",
    "DurableConfig",
    "EventsQuery",
    "ModelInput",
    "OpenInput",
    "OpenOutput",
    "SessionInput",
    "ToolInput",
    "ToolOutput",
    "host_queue",
    "idempotency_key",
    "result_from_wire",
    "result_to_wire",
]

WORKFLOW_NAME: Final = "conjure.Session"
ACTIVITY_OPEN: Final = "conjure.open"
ACTIVITY_MODEL: Final = "conjure.model"
ACTIVITY_TOOL: Final = "conjure.tool"
ACTIVITY_CLOSE: Final = "conjure.close"

HOST_BOUND_KINDS: Final = frozenset({"local"})
"""Backend kinds whose workspace is a path on one host: their activities stay on that host."""

KEPT_TURNS: Final = 4
"""Finished turns whose events the workflow's ``events`` query can still read."""


@dataclass
class BackendSpec:
    """How any worker rebuilds one backend of a durable session.

    ``kind`` names a factory registered with the worker
    (``conjure_worker(backends={kind: factory})``); ``config`` is what the
    factory receives. Both must be JSON-able: they travel in workflow state.
    """

    kind: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class DurableConfig:
    """The options of a durable session (the durable counterpart of ``Session(...)``).

    Attributes:
        backends: The backends, rebuilt on any worker from their spec.
        model: The key of the model callback registered with the worker.
        model_name: The ``model`` sent in requests.
        max_tokens: ``max_tokens`` of each request.
        system: Text placed before the skills block in the system prompt.
        max_iterations: Model calls allowed per turn.
        max_pause_continuations: ``pause_turn`` continuations per turn.
        tool_timeout: Seconds one tool call may run.
        require_approval: Tool names whose calls wait for a person's decision.
        turns_per_run: Turns before the workflow continues as new from a
            snapshot (also earlier when Temporal suggests it).
        heartbeat_timeout: Seconds without a heartbeat before a tool call's
            worker counts as dead and the call is retried elsewhere.
        tool_attempts: Attempts per tool call (retries after a worker died).
        model_attempts: Attempts per model call.
        host_timeout: Seconds a host-bound tool call (Local) may wait for a
            worker on its host before it fails.
        local_activities: Run model calls and the tool calls of backends any
            worker reaches as Temporal *local* activities (in the worker that
            runs the workflow task): much less overhead per step, but no
            heartbeat (a worker that dies mid-call is noticed only when the
            call's ``start_to_close`` timeout passes).
    """

    backends: list[BackendSpec] = field(default_factory=list)
    model: str = "default"
    model_name: str = "claude-sonnet-5-5"
    max_tokens: int = 4096
    system: str | None = None
    max_iterations: int = 25
    max_pause_continuations: int = 10
    tool_timeout: float = 120.0
    require_approval: list[str] = field(default_factory=list)
    turns_per_run: int = 50
    heartbeat_timeout: float = 10.0
    tool_attempts: int = 5
    model_attempts: int = 5
    host_timeout: float = 60.0
    local_activities: bool = False

    def __post_init__(self) -> None:
        if self.max_iterations < 1 or self.max_tokens < 1 or self.tool_timeout <= 0:
            raise ValueError("max_iterations, max_tokens and tool_timeout must be positive")
        if self.turns_per_run < 1 or self.tool_attempts < 1 or self.model_attempts < 1:
            raise ValueError("turns_per_run, tool_attempts and model_attempts must be positive")
        names: object = self.require_approval
        if isinstance(names, str):
            raise TypeError("require_approval takes a list of tool names, not one string")


@dataclass
class SessionInput:
    """The workflow's argument: the config, and the snapshot of a continued run.

    ``events`` carries the events of the previous run's last turn (by turn id),
    so a reader still polling for them finds them in the continued run.
    """

    session_id: str
    config: DurableConfig
    snapshot: dict[str, Any] | None = None
    events: dict[str, list[dict[str, Any]]] | None = None


@dataclass
class ChatRequest:
    """One turn: a message, or decisions for the pending calls (``approve``/``deny``)."""

    turn_id: str
    message: str | list[dict[str, Any]] | None = None
    approve: dict[str, dict[str, Any] | None] | None = None
    deny: dict[str, str] | None = None


@dataclass
class EventsQuery:
    """Ask for the events of turn ``turn_id`` after position ``after``."""

    turn_id: str
    after: int = 0


@dataclass
class OpenInput:
    session_id: str
    config: DurableConfig


@dataclass
class OpenOutput:
    tools: list[dict[str, Any]]
    """The client tool definitions sent to the model (wire form)."""
    kinds: dict[str, int]
    """Each tool name's backend, by index in ``config.backends``."""
    system: str | None
    states: list[dict[str, Any]]
    host: str
    """The host id of the worker that opened the session (host-bound backends stay there)."""


@dataclass
class ModelInput:
    model: str
    request: dict[str, Any]


@dataclass
class ToolInput:
    session_id: str
    index: int
    spec: BackendSpec
    state: dict[str, Any]
    call_id: str
    name: str
    input: dict[str, Any]
    idempotency_key: str
    timeout: float


@dataclass
class ToolOutput:
    result: dict[str, Any]
    state: dict[str, Any]


@dataclass
class CloseInput:
    session_id: str
    index: int
    spec: BackendSpec
    state: dict[str, Any]


def host_queue(task_queue: str, host: str) -> str:
    """The task queue of one host's workers (host-bound activities run there)."""
    return f"{task_queue}@{host}"


def idempotency_key(workflow_id: str, call_id: str) -> str:
    """The stable key of one tool call: the same on every attempt, on every worker."""
    return f"{workflow_id}/{call_id}"


def result_to_wire(result: ToolResult) -> dict[str, Any]:
    """A tool result as JSON-able data."""
    return {
        "output": result.output,
        "is_error": result.is_error,
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "timed_out": result.timed_out,
        "files": [f.model_dump(mode="json") for f in result.files],
        "error_type": result.error_type,
    }


def result_from_wire(data: dict[str, Any]) -> ToolResult:
    """Read back :func:`result_to_wire` output."""
    return ToolResult(
        output=data["output"],
        is_error=bool(data.get("is_error")),
        exit_code=data.get("exit_code"),
        stdout=data.get("stdout"),
        stderr=data.get("stderr"),
        timed_out=bool(data.get("timed_out")),
        files=tuple(CreatedFile.model_validate(f) for f in data.get("files", [])),
        error_type=data.get("error_type"),
    )
