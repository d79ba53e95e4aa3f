"""The durable session workflow: the same turn engine as ``Session``, driven by Temporal.

The workflow holds the session's state (the :class:`TurnEngine`: history,
usage, files, the turn in progress; the backends' state; the tools and the
system prompt) and does no I/O: every model call and tool call is an
activity (:mod:`conjure_async.temporal._activities`). The engine itself is
deterministic (no clock, no ids of its own: ``tool_use`` ids come from the
model), so replaying the workflow's history rebuilds the same state.

* One turn per ``chat`` update (a message, or decisions for pending calls);
  updates run one at a time (a workflow lock).
* A turn that stops for approval leaves the engine in ``awaiting_approval``:
  the workflow just waits for the next ``chat`` update carrying decisions.
* Events of a turn are kept from its acceptance until ``KEPT_TURNS`` later
  turns have finished, and read with the ``events`` query, which also says
  whether the turn's events are still held (a reader of a dropped turn ends
  with an error instead of polling forever); ``state`` returns the whole
  snapshot. The events of the run's last turn travel to a continued run.
* After ``turns_per_run`` turns (or when Temporal suggests it) the workflow
  continues as new from a snapshot, so its event history stays small.
* A ``close`` signal closes the backends (an activity each) and ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from conjure_async._engine import (
        Continue,
        Finished,
        RunTools,
        SendRequest,
        ToolSpec,
        TurnEngine,
    )
    from conjure_async._exceptions import ConjureError, MaxIterationsError
    from conjure_async._turn import TurnPhase
    from conjure_async.backends._base import ToolCall, ToolResult
    from conjure_async.events import (
        Event,
        FileCreated,
        ModelResponded,
        Paused,
        Reply,
        TextDelta,
        ToolFinished,
        ToolStarted,
        TurnFinished,
    )
    from conjure_async.messages import MessagesRequest, MessagesResponse, TextBlock
    from conjure_async.temporal._spec import (
        ACTIVITY_CLOSE,
        ACTIVITY_MODEL,
        ACTIVITY_OPEN,
        ACTIVITY_TOOL,
        HOST_BOUND_KINDS,
        KEPT_TURNS,
        WORKFLOW_NAME,
        ChatRequest,
        CloseInput,
        EventsQuery,
        ModelInput,
        OpenInput,
        OpenOutput,
        SessionInput,
        ToolInput,
        ToolOutput,
        host_queue,
        idempotency_key,
        result_from_wire,
    )

__all__ = ["SessionWorkflow"]

SNAPSHOT_VERSION = 1


@workflow.defn(name=WORKFLOW_NAME)
class SessionWorkflow:
    """A conversation that survives its workers (see the module docstring)."""

    @workflow.init
    def __init__(self, input: SessionInput) -> None:
        self._session_id = input.session_id
        self._config = input.config
        self._lock = asyncio.Lock()
        self._engine: TurnEngine | None = None
        self._tools: list[dict[str, Any]] = []
        self._kinds: dict[str, int] = {}
        self._system: str | None = None
        self._states: list[dict[str, Any]] = [{} for _ in input.config.backends]
        self._host = ""
        self._turns = 0
        self._runs = 0
        self._turns_this_run = 0
        self._closing = False
        self._continuing = False
        self._open_failure: ApplicationError | None = None
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._finished_turns: dict[str, None] = {}  # in finishing order
        if input.snapshot is not None:
            self._load(input.snapshot)
        for turn_id, events in (input.events or {}).items():
            self._events[turn_id] = events
            self._finished_turns[turn_id] = None

    # -- lifecycle -----------------------------------------------------------

    @workflow.run
    async def run(self, input: SessionInput) -> dict[str, Any]:
        """Open the backends (first run only), serve turns, then close or continue as new."""
        if self._engine is None:
            try:
                opened: OpenOutput = await workflow.execute_activity(
                    ACTIVITY_OPEN,
                    OpenInput(session_id=self._session_id, config=self._config),
                    result_type=OpenOutput,
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(maximum_attempts=self._config.model_attempts),
                )
            except ActivityError as exc:
                # The session cannot open: turns waiting for it get the reason, then it fails.
                self._open_failure = _reason(exc)
                await workflow.wait_condition(workflow.all_handlers_finished)
                raise self._open_failure from exc
            self._tools, self._kinds, self._system = opened.tools, opened.kinds, opened.system
            self._states, self._host = opened.states, opened.host
            self._engine = self._new_engine(None)
        await workflow.wait_condition(lambda: self._closing or self._continuing)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._closing:
            await self._close_backends()
            return self.snapshot()
        last = next(reversed(self._finished_turns), None)  # its reader may still be polling
        workflow.continue_as_new(  # raises: the run ends here
            SessionInput(
                session_id=self._session_id,
                config=self._config,
                snapshot=self.snapshot(),
                events=None if last is None else {last: self._events[last]},
            )
        )
        raise AssertionError("unreachable")  # pragma: no cover - continue_as_new raised

    @workflow.signal(name="close")
    def close(self) -> None:
        """Close the backends and end the session (after the running turn)."""
        self._closing = True

    async def _close_backends(self) -> None:
        for index, spec in enumerate(self._config.backends):
            await workflow.execute_activity(
                ACTIVITY_CLOSE,
                CloseInput(self._session_id, index, spec, self._states[index]),
                start_to_close_timeout=timedelta(minutes=2),
                task_queue=self._queue_of(index),
                schedule_to_start_timeout=self._host_timeout(index),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )

    # -- queries -------------------------------------------------------------

    @workflow.query(name="state")
    def snapshot(self) -> dict[str, Any]:
        """The whole session state, JSON-able (also what a continued run starts from)."""
        return {
            "version": SNAPSHOT_VERSION,
            "session_id": self._session_id,
            "engine": None if self._engine is None else self._engine.dump(),
            "tools": self._tools,
            "kinds": self._kinds,
            "system": self._system,
            "states": self._states,
            "host": self._host,
            "turns": self._turns,
            "runs": self._runs,
        }

    @workflow.query(name="pending")
    def pending(self) -> list[dict[str, Any]]:
        """The calls waiting for a decision, in call order."""
        if self._engine is None:
            return []
        return [call.model_dump(mode="json") for call in self._engine.pending]

    @workflow.query(name="events")
    def events(self, query: EventsQuery) -> dict[str, Any]:
        """The events of turn ``query.turn_id`` after position ``query.after``.

        ``held`` is false when this run holds no events of that turn: they were
        dropped (``KEPT_TURNS`` later turns finished), or the turn belongs to an
        earlier run, or it was never sent. A turn is held from its acceptance.
        """
        kept = self._events.get(query.turn_id)
        return {
            "events": [] if kept is None else kept[query.after :],
            "next": query.after if kept is None else len(kept),
            "finished": query.turn_id in self._finished_turns,
            "held": kept is not None,
        }

    # -- turns ---------------------------------------------------------------

    @workflow.update(name="chat")
    async def chat(self, request: ChatRequest) -> dict[str, Any]:
        """Run one turn (a message, or decisions for the pending calls); return its reply."""
        events = self._events.setdefault(request.turn_id, [])  # held from its acceptance on
        try:
            reply = await self._turn(request, lambda event: events.append(_event(event)))
        finally:
            self._finish(request.turn_id)  # also a failed turn: its reader stops polling
        self._turns += 1
        self._turns_this_run += 1
        if (
            self._turns_this_run >= self._config.turns_per_run
            or workflow.info().is_continue_as_new_suggested()
        ):
            self._continuing = True
        return reply.model_dump(mode="json")

    async def _turn(self, request: ChatRequest, emit: Callable[[Event], None]) -> Reply:
        await workflow.wait_condition(
            lambda: self._engine is not None or self._open_failure is not None
        )
        if self._open_failure is not None:
            raise self._open_failure
        async with self._lock:
            engine = self._engine
            assert engine is not None
            try:
                if request.message is not None:
                    self._refuse_message_while_pending(engine)
                    action: Any = engine.begin(request.message)
                else:
                    action = engine.resolve(request.approve or {}, request.deny or {})
                return await self._drive(engine, action, emit)
            except (ConjureError, ValueError, TypeError) as exc:
                raise ApplicationError(
                    str(exc), type=type(exc).__name__, non_retryable=True
                ) from exc
            finally:
                engine.cancel()  # a no-op after the turn's end; otherwise answers what is open

    @chat.validator
    def _check_chat(self, request: ChatRequest) -> None:
        """Refuse a malformed turn before it enters the history."""
        decided = request.approve is not None or request.deny is not None
        if (request.message is None) == (not decided):
            raise ValueError(
                "give a message, or approvals for the pending tool calls (not both, not neither)"
            )
        if self._closing:
            raise ValueError("the durable session is closing")
        if self._engine is not None and request.message is not None:
            self._refuse_message_while_pending(self._engine)
        if self._engine is not None and decided and not self._engine.pending:
            raise ApplicationError(
                "no tool call awaits approval", type="SessionStateError", non_retryable=True
            )

    @staticmethod
    def _refuse_message_while_pending(engine: TurnEngine) -> None:
        if engine.phase is TurnPhase.AWAITING_APPROVAL:
            pending = [call.call_id for call in engine.pending]
            raise ApplicationError(
                f"tool calls await approval: {pending}; answer each with "
                "chat(approvals={call_id: Approve() | Deny(reason)}) before a new message",
                type="SessionStateError",
                non_retryable=True,
            )

    async def _drive(self, engine: TurnEngine, action: Any, emit: Callable[[Event], None]) -> Reply:
        """The turn loop: the session's, with activities for the I/O."""
        engine.max_iterations = self._config.max_iterations
        while True:
            if isinstance(action, SendRequest):
                response = await self._ask_model(engine)
                action = engine.on_response(response)
                for block in response.content:
                    if isinstance(block, TextBlock) and block.text:
                        emit(TextDelta._fast(kind="text_delta", text=block.text))
                emit(ModelResponded._fast(kind="model_responded", **_about_response(response)))
            elif isinstance(action, RunTools):
                await asyncio.gather(
                    *(
                        self._run_call(engine, call, action.refusals.get(call.id), emit)
                        for call in action.calls
                    )
                )
                action = engine.next_request()
            elif isinstance(action, Continue):
                emit(Paused._fast(kind="paused", count=action.pauses))
                action = engine.next_request()
            elif isinstance(action, Finished):
                emit(TurnFinished._fast(kind="turn_finished", reply=action.reply))
                return action.reply
            else:
                error = MaxIterationsError(action.limit)
                raise ApplicationError(str(error), type="MaxIterationsError", non_retryable=True)

    async def _ask_model(self, engine: TurnEngine) -> MessagesResponse:
        config = self._config
        request = MessagesRequest._fast(
            model=config.model_name,
            max_tokens=config.max_tokens,
            messages=list(engine.history),
            system=self._system,
            tools=list(self._tools) if self._tools else None,
            tool_choice=None,
            container=None,
            stream=None,
            betas=[],
        )
        run = (
            workflow.execute_local_activity
            if config.local_activities
            else workflow.execute_activity
        )
        raw: dict[str, Any] = await run(
            ACTIVITY_MODEL,
            ModelInput(model=config.model, request=request.body()),
            result_type=dict,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(
                maximum_attempts=config.model_attempts,
                non_retryable_error_types=_NOT_RETRIED,
            ),
        )
        return MessagesResponse.model_validate(raw)

    async def _run_call(
        self,
        engine: TurnEngine,
        call: ToolCall,
        refusal: str | None,
        emit: Callable[[Event], None],
    ) -> None:
        index = self._kinds.get(call.name)
        kind = self._config.backends[index].kind if index is not None else "none"
        about = {"call_id": call.id, "name": call.name, "backend": kind}
        emit(ToolStarted._fast(kind="tool_started", input=call.input, **about))
        started = workflow.time()
        if refusal is not None or index is None:
            result = ToolResult(output=refusal or "unknown tool", is_error=True)
        else:
            result = await self._tool_activity(index, call)
        new_files = engine.on_result(call.id, result)
        duration = workflow.time() - started
        emit(
            ToolFinished._fast(kind="tool_finished", duration_s=duration, **about, **_about(result))
        )
        for created in new_files:
            emit(FileCreated._fast(kind="file_created", file=created))

    async def _tool_activity(self, index: int, call: ToolCall) -> ToolResult:
        config = self._config
        try:
            out = await self._call_tool(index, call)
        except ActivityError as exc:
            cause = exc.cause
            queue = self._queue_of(index)
            if (
                queue is not None
                and isinstance(cause, TimeoutError)
                and cause.type is TimeoutType.SCHEDULE_TO_START
            ):
                raise ApplicationError(
                    f"no worker on host {self._host!r} took the {config.backends[index].kind} "
                    f"call within {config.host_timeout:g}s (its workspace lives there; "
                    "run conjure_worker on that host)",
                    type="BackendError",
                    non_retryable=True,
                ) from exc
            raise
        self._states[index] = out.state
        return result_from_wire(out.result)

    async def _call_tool(self, index: int, call: ToolCall) -> ToolOutput:
        config = self._config
        request = ToolInput(
            session_id=self._session_id,
            index=index,
            spec=config.backends[index],
            state=self._states[index],
            call_id=call.id,
            name=call.name,
            input=call.input,
            idempotency_key=idempotency_key(workflow.info().workflow_id, call.id),
            timeout=config.tool_timeout,
        )
        retry = RetryPolicy(
            maximum_attempts=config.tool_attempts, non_retryable_error_types=_NOT_RETRIED
        )
        if config.local_activities and self._queue_of(index) is None:
            local: ToolOutput = await workflow.execute_local_activity(
                ACTIVITY_TOOL,
                request,
                result_type=ToolOutput,
                start_to_close_timeout=timedelta(seconds=config.tool_timeout + 60),
                retry_policy=retry,
            )
            return local
        out: ToolOutput = await workflow.execute_activity(
            ACTIVITY_TOOL,
            request,
            result_type=ToolOutput,
            task_queue=self._queue_of(index),
            schedule_to_start_timeout=self._host_timeout(index),
            start_to_close_timeout=timedelta(seconds=config.tool_timeout + 60),
            heartbeat_timeout=timedelta(seconds=config.heartbeat_timeout),
            retry_policy=retry,
        )
        return out

    # -- helpers -------------------------------------------------------------

    def _queue_of(self, index: int) -> str | None:
        """Host-bound backends (Local) run on the host that opened the session."""
        if self._config.backends[index].kind in HOST_BOUND_KINDS and self._host:
            return host_queue(workflow.info().task_queue, self._host)
        return None

    def _host_timeout(self, index: int) -> timedelta | None:
        if self._queue_of(index) is None:
            return None
        return timedelta(seconds=self._config.host_timeout)

    def _finish(self, turn_id: str) -> None:
        """Mark a turn finished; drop the events of finished turns beyond ``KEPT_TURNS``."""
        self._finished_turns[turn_id] = None
        while len(self._finished_turns) > KEPT_TURNS:
            oldest = next(iter(self._finished_turns))
            del self._finished_turns[oldest]
            self._events.pop(oldest, None)

    def _new_engine(self, dumped: dict[str, Any] | None) -> TurnEngine:
        config = self._config
        specs = [
            ToolSpec(d["name"], config.backends[self._kinds[d["name"]]].kind, d["input_schema"])
            for d in self._tools
        ]
        options: dict[str, Any] = {
            "max_iterations": config.max_iterations,
            "max_pause_continuations": config.max_pause_continuations,
            "require_approval": frozenset(config.require_approval),
        }
        if dumped is None:
            return TurnEngine(specs, **options)
        return TurnEngine.load(dumped, specs, **options)

    def _load(self, snapshot: dict[str, Any]) -> None:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ApplicationError("not a durable session snapshot", non_retryable=True)
        self._tools = list(snapshot["tools"])
        self._kinds = dict(snapshot["kinds"])
        self._system = snapshot["system"]
        self._states = list(snapshot["states"])
        self._host = snapshot["host"]
        self._turns = int(snapshot["turns"])
        self._runs = int(snapshot.get("runs", 0)) + 1
        if snapshot["engine"] is not None:
            self._engine = self._new_engine(snapshot["engine"])


_NOT_RETRIED = [
    "AuthenticationError",
    "BadRequestError",
    "PermissionDeniedError",
    "NotFoundError",
    "RequestTooLargeError",
    "ModelResponseError",
    "BackendError",
    "SessionStateError",
    "ToolConflictError",
    "MissingDependencyError",
    "ContainerDiedError",
]
"""Failures a retry cannot fix (exception class names of the package's tree)."""


def _reason(exc: ActivityError) -> ApplicationError:
    """The activity's own failure (type and message kept), non-retryable."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    return ApplicationError(str(cause or exc), type="SessionError", non_retryable=True)


def _event(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _about_response(response: MessagesResponse) -> dict[str, Any]:
    """The fields of a ``model_responded`` event that come from the response."""
    return {"stop_reason": response.stop_reason, "usage": response.usage, "model": response.model}


def _about(result: ToolResult) -> dict[str, Any]:
    """The fields of a ``tool_finished`` event that come from the result."""
    names = ("is_error", "exit_code", "stdout", "stderr", "timed_out")
    return {"output": result.text, **{name: getattr(result, name) for name in names}}
