"""The turn engine: the conversation's rules, as plain synchronous code.

A :class:`TurnEngine` holds a conversation's history, token usage and created
files, and the state of the turn in progress. It is fed what happened (the
user's message, a model response, a tool result) and answers what to do next
(an *action*). It does no I/O, reads no clock and never imports anyio, so the
same rules run inside :class:`~conjure_async.Session` and, replayed step by
step, inside a durable workflow. See ``docs/adr/0007-turn-engine.md``; the
rules of approvals that wait are in :mod:`conjure_async._engine_approvals`.

Driving it (what the session does, with the I/O around it)::

    action = engine.begin("Analyze app.log")
    while True:
        if isinstance(action, SendRequest):
            response = await model(request_from(engine.history))
            action = engine.on_response(response)
        elif isinstance(action, RunTools):
            for call in action.calls:                  # concurrently, in any order
                engine.on_result(call.id, await run(call, action.refusals.get(call.id)))
            action = engine.next_request()
        elif isinstance(action, Continue):             # pause_turn: send the turn back
            action = engine.next_request()
        elif isinstance(action, Finished):             # (reply.pending: see resolve())
            return action.reply
        else:                                          # Stopped: a limit was reached
            raise MaxIterationsError(engine.max_iterations)

Whatever stops a turn early (a cancellation, a failed model call) ends with
:meth:`TurnEngine.cancel`, which answers every call still without a result,
so the history is always a valid next request for the Messages API:

* the conversation starts with a user message and roles alternate (a new
  user message after an interrupted turn is merged into the trailing one);
* no message has empty content;
* every ``tool_use`` is answered, in order, by the next message, and no
  ``tool_use`` id appears twice in a response;
* no ``server_tool_use`` without its result is left at the end when the user
  speaks next (the API rejects it).

The texts the model receives for calls the engine answers itself are the
module's constants (:data:`NOT_RUN_CANCELLED`, :data:`NOT_RUN_MAX_TOKENS`,
:data:`UNKNOWN_TOOL`, :data:`INVALID_ARGUMENTS`, :data:`INVALID_REWRITE`).
The whole state dumps to JSON (:meth:`TurnEngine.dump`) and loads back
(:meth:`TurnEngine.load`), also in the middle of a turn.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final

from conjure_async._engine_approvals import ApprovalRules, approval_names
from conjure_async._exceptions import SessionStateError
from conjure_async._history import (
    SharedHistory,
    add_assistant,
    answer,
    append_user,
    checked_content,
    continued_ids,
    drop_unanswered_server_calls,
    not_run,
    repair_unanswered_calls,
    reply_text,
)
from conjure_async._schema import Check, schema_errors
from conjure_async._turn import (
    NO_REFUSALS,
    SEND,
    Action,
    Continue,
    Finished,
    RunTools,
    SendRequest,
    Stopped,
    StopReason,
    ToolSpec,
    Turn,
    TurnPhase,
    UsageSum,
    compiled_check,
    dump_turn,
    file_key,
    load_engine_parts,
    new_tool_call,
    record_of,
    replace_or_add,
)
from conjure_async.backends._base import ToolCall, ToolResult
from conjure_async.events import (
    CreatedFile,
    Event,
    FileCreated,
    Reply,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
)
from conjure_async.messages import (
    ContentBlock,
    Message,
    MessagesResponse,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from conjure_async.messages import _fast_construct as _build  # per call: no validation

__all__ = [
    "INVALID_ARGUMENTS",
    "INVALID_REWRITE",
    "NOT_RUN_CANCELLED",
    "NOT_RUN_MAX_TOKENS",
    "NO_BACKEND",
    "UNKNOWN_TOOL",
    "Action",
    "Continue",
    "Finished",
    "RunTools",
    "SendRequest",
    "StopReason",
    "Stopped",
    "ToolSpec",
    "TurnEngine",
    "TurnPhase",
]

ENGINE_STATE_VERSION: Final = 1

NOT_RUN_CANCELLED: Final = "Tool call cancelled before it finished."
"""The result the model receives for a call that was cancelled (or never answered)."""
NOT_RUN_MAX_TOKENS: Final = (
    "This tool call was not run: the response was cut off by max_tokens before its "
    "input was complete."
)
"""The result the model receives for a call in a response cut off by ``max_tokens``."""
UNKNOWN_TOOL: Final = "Unknown tool {name!r}. Available tools: {available}."
"""The result for a call of a tool no backend serves (``available``: the sorted names)."""
INVALID_ARGUMENTS: Final = "Invalid arguments for {name}: {problems}"
"""The result for a call whose input does not match the tool's schema."""
INVALID_REWRITE: Final = (
    "Invalid arguments for {name} after the before_tool_call hook rewrote them: {problems}"
)
"""The result for a call a ``before_tool_call`` hook rewrote into input the schema refuses."""
NO_BACKEND: Final = "none"
"""The backend named in events and records for a call of an unknown tool."""

_PAUSES = frozenset({"pause_turn", "compaction"})  # continued: a long turn, a compaction
_CUT_OFF = "max_tokens"


class TurnEngine(SharedHistory, ApprovalRules):
    """The rules of the conversation loop, fed events and answering actions.

    Args:
        tools: The client tools calls may be routed to.
        max_iterations: Model calls allowed per turn; one more ends it with
            :class:`Stopped`.
        max_pause_continuations: ``pause_turn`` continuations per turn; past
            it the turn finishes with ``stop_reason="pause_turn"``.
        messages: The history to start from (a restored conversation). A
            trailing unanswered ``tool_use`` is answered as cancelled.
        usage: Token usage so far.
        files: Files created so far.
        require_approval: Tool names whose calls wait for a person's decision
            (see :meth:`resolve`).
    """

    __slots__ = (
        "_checks",
        "_files",
        "_history",
        "_phase",
        "_shared",
        "_specs",
        "_turn",
        "_usage",
        "dropped_ids",
        "max_iterations",
        "max_pause_continuations",
        "require_approval",
    )

    def __init__(
        self,
        tools: Iterable[ToolSpec] = (),
        *,
        max_iterations: int = 25,
        max_pause_continuations: int = 10,
        messages: Iterable[Message] = (),
        usage: Usage | None = None,
        files: Iterable[CreatedFile] = (),
        require_approval: Collection[str] = (),
    ) -> None:
        if max_iterations < 1 or max_pause_continuations < 0:
            raise ValueError(
                "max_iterations must be positive, max_pause_continuations not negative"
            )
        self._specs: dict[str, ToolSpec] = {spec.name: spec for spec in tools}
        self.require_approval = approval_names(require_approval)
        self._checks: dict[str, Check] = {}
        self.max_iterations = max_iterations
        self.max_pause_continuations = max_pause_continuations
        self._history: list[Message] = list(messages)
        self._shared = False
        """:meth:`snapshot` handed the history out: copy it before changing it, if still held."""
        self._usage = UsageSum.of(usage) if usage is not None else UsageSum()
        self._files: list[CreatedFile] = list(files)
        self._phase = TurnPhase.IDLE
        self._turn: Turn | None = None
        self.dropped_ids: tuple[str, ...] = ()
        """``tool_use`` ids the last response repeated (dropped; the session logs them)."""
        repair_unanswered_calls(self._history, NOT_RUN_CANCELLED)

    # -- what it holds -----------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """The conversation (the engine's own list: read it, do not change it)."""
        return self._history

    @property
    def phase(self) -> TurnPhase:
        """Where the engine is in the turn."""
        return self._phase

    @property
    def usage(self) -> Usage:
        """Token usage summed over every response the engine saw (the turn's included)."""
        if self._turn is None:
            return self._usage.freeze()
        total = UsageSum()
        total.add_sum(self._usage)
        total.add_sum(self._turn.usage)
        return total.freeze()

    @property
    def files(self) -> list[CreatedFile]:
        """Every file reported created, latest version of each."""
        return list(self._files)

    @property
    def tools(self) -> list[ToolSpec]:
        """The client tools calls may be routed to."""
        return list(self._specs.values())

    @property
    def iterations(self) -> int:
        """Model calls made in the turn in progress (0 when idle)."""
        return self._turn.iterations if self._turn is not None else 0

    def reset(self) -> None:
        """Forget the history (usage and files stay); only between turns."""
        self._expect(TurnPhase.IDLE, "reset")
        self._own().clear()

    # -- the turn ------------------------------------------------------------

    def begin(self, content: str | Sequence[Any]) -> SendRequest:
        """Start a turn with the user's ``content`` (text, or content blocks as dicts).

        A ``server_tool_use`` left without its result at the end (a turn that
        ended paused) is dropped first; after an interrupted turn the content
        is merged into the trailing user message.

        Raises:
            SessionStateError: A turn is already running.
            pydantic.ValidationError: ``content`` blocks are malformed.
        """
        self._expect(TurnPhase.IDLE, "begin a turn")
        history = self._own()
        drop_unanswered_server_calls(history)
        append_user(history, content)
        self._turn = Turn(start=len(self._history))
        self._turn.iterations = 1
        self._phase = TurnPhase.AWAITING_RESPONSE
        return SEND

    def on_response(self, response: MessagesResponse) -> RunTools | Continue | Finished:
        """Take the model's response; say whether to run tools, continue or finish.

        Usage is summed; the content is stored (a repeated ``tool_use`` id
        dropped, nothing stored when empty, a continuation merged into the
        paused message). Client calls in a response cut off by
        ``max_tokens`` are answered with :data:`NOT_RUN_MAX_TOKENS` and the
        turn finishes; calls of unknown tools or with invalid input come back
        in :attr:`RunTools.refusals`.
        """
        turn = self._turn
        if self._phase is not TurnPhase.AWAITING_RESPONSE or turn is None:
            raise SessionStateError(f"cannot take a response while the turn is {self._phase.value}")
        turn.usage.add(response.usage)
        stop = response.stop_reason
        history = self._own()
        if turn.continuation:
            content, uses, self.dropped_ids = checked_content(
                response.content, continued_ids(history)
            )
            if content:
                add_assistant(history, content, continuation=True)
            turn.continuation = False
        else:
            content, uses, self.dropped_ids = checked_content(response.content)
            if content:
                history.append(_build(Message, {"role": "assistant", "content": content}))
        if uses:
            if stop == _CUT_OFF:
                answer(history, uses, NOT_RUN_MAX_TOKENS)
                return self._finish(stop)
            return self._hand_out(turn, uses)
        if stop in _PAUSES and turn.pauses < self.max_pause_continuations:
            turn.pauses += 1
            turn.continuation = True
            self._phase = TurnPhase.CONTINUING
            return Continue(turn.pauses)
        return self._finish(stop)

    def on_result(
        self, call_id: str, result: ToolResult, *, input: dict[str, Any] | None = None
    ) -> Sequence[CreatedFile]:
        """Take the result of a call handed out by :class:`RunTools`, in any order.

        ``input`` is what the call ran with when a hook rewrote it (recorded
        in the reply). Returns the files in ``result.files`` this turn has not
        reported before (the session announces them).

        Raises:
            SessionStateError: No call with this id is waiting for a result.
        """
        turn = self._turn
        if self._phase is not TurnPhase.RUNNING_TOOLS or turn is None:
            raise SessionStateError(
                f"cannot take a tool result while the turn is {self._phase.value}"
            )
        position = turn.positions.get(call_id)
        if position is None or turn.results[position] is not None:
            raise SessionStateError(f"no tool call {call_id!r} is waiting for a result")
        call = turn.calls[position]
        output = result.output
        turn.results[position] = _build(
            ToolResultBlock,
            {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": output,
                "is_error": True if result.is_error else None,
            },
        )
        turn.missing -= 1
        spec = self._specs.get(call.name)
        # Plain values the collector stops tracking (RecordData); the record is built at the
        # end, with the input from the history's tool_use block unless it was changed.
        at = len(self._history) - 1  # the assistant message holding the call
        turn.batch_records[position] = (
            call_id,
            call.name,
            call.input if input is None else input,  # what it ran with
            spec.backend if spec is not None else NO_BACKEND,
            output if isinstance(output, str) else result.text,
            result.is_error,
            result.exit_code,
            at,
        )
        if not result.files:
            return ()
        return [created for created in result.files if self._record_file(turn, created)]

    def next_request(self) -> SendRequest | Stopped | Finished:
        """After every result is in (or a pause), send the next request, within the limit.

        Raises:
            SessionStateError: Calls are still waiting for results.
        """
        turn = self._turn
        if self._phase is TurnPhase.RUNNING_TOOLS and turn is not None:
            if turn.missing:
                waiting = [c.id for c, r in zip(turn.calls, turn.results, strict=True) if r is None]
                raise SessionStateError(f"tool calls still waiting for results: {waiting}")
            if turn.pending:
                return self._suspend(turn)
            self._append_results(turn)
        elif self._phase is not TurnPhase.CONTINUING or turn is None:
            raise SessionStateError(f"cannot send the next request while {self._phase.value}")
        if turn.iterations >= self.max_iterations:
            self._end()
            return Stopped(StopReason.MAX_ITERATIONS, self.max_iterations)
        turn.iterations += 1
        self._phase = TurnPhase.AWAITING_RESPONSE
        return SEND

    def on_results(self, results: Mapping[str, ToolResult]) -> SendRequest | Stopped | Finished:
        """Take every result of a :class:`RunTools` at once, then :meth:`next_request`."""
        for call_id, result in results.items():
            self.on_result(call_id, result)
        return self.next_request()

    def cancel(self) -> None:
        """End the turn early (cancelled, or a model call failed), keeping the history valid.

        Calls without a result are answered with :data:`NOT_RUN_CANCELLED`;
        results already in are kept. A no-op when idle or awaiting approval.
        """
        turn = self._turn
        if self._phase is TurnPhase.AWAITING_APPROVAL:
            return
        if self._phase is TurnPhase.RUNNING_TOOLS and turn is not None:
            for position, block in enumerate(turn.results):
                if block is None:
                    turn.results[position] = not_run(turn.calls[position].id, NOT_RUN_CANCELLED)
            self._append_results(turn)
        self._end()

    def note_event(self, event: Event) -> bool:
        """Take an event a backend reported for server-side work; return whether to emit it.

        Server tool calls are recorded in the reply (``tool_started`` gives
        the input, ``tool_finished`` the outcome); a created file is kept and
        announced once per turn.
        """
        turn = self._expect_turn(TurnPhase.AWAITING_RESPONSE, "take a backend event")
        if isinstance(event, FileCreated):
            return self._record_file(turn, event.file)
        if isinstance(event, ToolStarted):
            turn.server_inputs[event.call_id] = event.input
        elif isinstance(event, ToolFinished):
            turn.records.append(
                ToolCallRecord._fast(
                    call_id=event.call_id,
                    name=event.name,
                    input=turn.server_inputs.pop(event.call_id, {}),
                    backend=event.backend,
                    output=event.output,
                    is_error=event.is_error,
                    exit_code=event.exit_code,
                )
            )
        return True

    def check_rewrite(self, name: str, input: dict[str, Any]) -> str | None:
        """The error text for input a ``before_tool_call`` hook rewrote, or ``None`` if valid."""
        spec = self._specs.get(name)
        if spec is None or self._check(spec)(input):
            return None
        problems = "; ".join(schema_errors(input, spec.input_schema))
        return INVALID_REWRITE.format(name=name, problems=problems)

    # -- steps -------------------------------------------------------------

    def _hand_out(self, turn: Turn, uses: list[ToolUseBlock]) -> RunTools | Finished:
        calls = tuple([new_tool_call(b.id, b.name, b.input) for b in uses])
        refusals: dict[str, str] | None = None
        checks = self._checks
        for call in calls:
            check = checks.get(call.name)
            if check is not None and check(call.input):
                continue  # a known tool, valid input: the common case
            refusal = self._refusal(call)
            if refusal is not None:
                if refusals is None:
                    refusals = {}
                refusals[call.id] = refusal
        count = len(calls)
        turn.calls = calls
        turn.results = [None] * count
        turn.batch_records = [None] * count
        turn.positions = (
            {calls[0].id: 0} if count == 1 else {call.id: i for i, call in enumerate(calls)}
        )
        turn.missing = count
        self._phase = TurnPhase.RUNNING_TOOLS
        if self.require_approval:
            calls = self._defer_marked(turn, refusals or NO_REFUSALS)
            if not calls:
                return self._suspend(turn)
        return RunTools(calls, refusals or NO_REFUSALS)

    def _refusal(self, call: ToolCall) -> str | None:
        """Why a call must not run (unknown tool, invalid input), or ``None``."""
        spec = self._specs.get(call.name)
        if spec is None:
            available = ", ".join(sorted(self._specs)) or "none"
            return UNKNOWN_TOOL.format(name=call.name, available=available)
        if self._check(spec)(call.input):
            return None
        problems = "; ".join(schema_errors(call.input, spec.input_schema))
        return INVALID_ARGUMENTS.format(name=call.name, problems=problems)

    def _check(self, spec: ToolSpec) -> Check:
        check = self._checks.get(spec.name)
        if check is None:  # compiled on first use: most sessions call few of their tools
            check = self._checks[spec.name] = compiled_check(spec.input_schema)
        return check

    def _finish(self, stop: str | None) -> Finished:
        turn = self._turn
        assert turn is not None
        reply = Reply._fast(
            text=reply_text(self._history, turn.start),
            stop_reason=stop,
            usage=turn.usage.freeze(),
            tool_calls=[record_of(r, self._history) for r in turn.records],
            files=turn.files,
            iterations=turn.iterations,
            pending=[],
            output=None,
        )
        self._end()
        return Finished(reply)

    def _end(self) -> None:
        if self._turn is not None:
            self._usage.add_sum(self._turn.usage)
        self._turn = None
        self._phase = TurnPhase.IDLE

    def _append_results(self, turn: Turn) -> None:
        blocks: list[ContentBlock] = turn.results  # type: ignore[assignment] # all set now
        self._own().append(_build(Message, {"role": "user", "content": blocks}))
        for record in turn.batch_records:
            if record is not None:
                turn.records.append(record)
        turn.calls, turn.results, turn.batch_records, turn.positions = (), [], [], {}
        turn.missing = 0

    def _record_file(self, turn: Turn, created: CreatedFile) -> bool:
        """Add or update a created file; return whether this turn sees it for the first time."""
        key = file_key(created)
        replace_or_add(self._files, created, key)
        return not replace_or_add(turn.files, created, key)

    def _expect(self, phase: TurnPhase, doing: str) -> None:
        if self._phase is not phase:
            raise SessionStateError(f"cannot {doing} while the turn is {self._phase.value}")

    def _expect_turn(self, phase: TurnPhase, doing: str) -> Turn:
        turn = self._turn
        if self._phase is not phase or turn is None:
            raise SessionStateError(f"cannot {doing} while the turn is {self._phase.value}")
        return turn

    # -- state -------------------------------------------------------------

    def dump(self, *, messages: bool = True) -> dict[str, Any]:
        """The whole state as JSON-able data, also in the middle of a turn.

        With ``messages=False`` the history is left out (``"messages": None``):
        an incremental save converts only the messages it has not stored.
        """
        history, turn = self._history, self._turn
        return {
            "version": ENGINE_STATE_VERSION,
            "messages": [m.to_wire() for m in history] if messages else None,
            "usage": self._usage.freeze().to_wire(),
            "files": [f.model_dump(mode="json") for f in self._files],
            "turn": None if turn is None else dump_turn(turn, self._phase, history),
        }

    @classmethod
    def load(
        cls,
        state: Mapping[str, Any] | str,
        tools: Iterable[ToolSpec] = (),
        *,
        max_iterations: int = 25,
        max_pause_continuations: int = 10,
        require_approval: Collection[str] = (),
    ) -> TurnEngine:
        """Rebuild an engine from :meth:`dump` output (a dict or its JSON).

        Raises:
            SessionStateError: The state is malformed (the message says where).
        """
        messages, usage, files, loaded = load_engine_parts(state, ENGINE_STATE_VERSION)
        engine = cls(
            tools,
            max_iterations=max_iterations,
            max_pause_continuations=max_pause_continuations,
            usage=usage,
            files=files,
            require_approval=require_approval,
        )
        engine._history = messages
        if loaded is None:
            repair_unanswered_calls(engine._history, NOT_RUN_CANCELLED)
        else:
            engine._phase, engine._turn = loaded
        return engine
