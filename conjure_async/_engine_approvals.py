"""The turn engine's rules for approvals that wait: deferring calls, and deciding them later.

A call is *deferred* when its tool is marked as needing approval (the engine
decides, when the response arrives) or when a ``before_tool_call`` hook
answers ``Defer()`` (the session reports it with :meth:`ApprovalRules.defer`).
A deferred call runs nothing and has no result yet. Once every other call of
the response has its result, the turn *stops*: :meth:`next_request` answers
:class:`~conjure_async._turn.Finished` with a reply listing the pending calls,
and the engine waits in :attr:`TurnPhase.AWAITING_APPROVAL` (the state dumps
to JSON like any other). Later, maybe in another process,
:meth:`ApprovalRules.resolve` takes a decision for each pending call: approved
calls (with their input, maybe edited) are handed out again, denied ones get
an error result with the reason, and the turn goes on from exactly there. The
results of the calls that needed no approval were kept all along.

This module is part of :class:`~conjure_async._engine.TurnEngine` (a base
class holding only methods); it does no I/O either.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from conjure_async._exceptions import SessionStateError
from conjure_async._history import reply_text
from conjure_async._turn import (
    NO_REFUSALS,
    Finished,
    RunTools,
    SendRequest,
    Stopped,
    ToolSpec,
    TurnPhase,
    record_of,
)
from conjure_async.backends._base import ToolCall
from conjure_async.events import PendingCall, Reply, ToolCallRecord
from conjure_async.messages import ToolResultBlock

if TYPE_CHECKING:
    from conjure_async._turn import Turn

__all__ = ["INVALID_APPROVAL", "ApprovalRules", "approval_names"]

INVALID_APPROVAL: Final = "Invalid arguments for {name} after the approver edited them: {problems}"
"""The result for an approved call whose edited input the tool's schema refuses."""
NO_BACKEND: Final = "none"
"""The backend named for a call of an unknown tool (the same as the engine's)."""


class ApprovalRules:
    """Deferred calls and their decisions: the part of the engine for approvals that wait."""

    __slots__ = ()

    if TYPE_CHECKING:
        _turn: Turn | None
        _phase: TurnPhase
        require_approval: frozenset[str]
        _specs: dict[str, ToolSpec]

        def _expect_turn(self, phase: TurnPhase, doing: str) -> Turn: ...
        def check_rewrite(self, name: str, input: dict[str, Any]) -> str | None: ...
        def next_request(self) -> SendRequest | Stopped | Finished: ...
        @property
        def history(self) -> list[Any]: ...

    @property
    def pending(self) -> list[PendingCall]:
        """The calls waiting for a decision, in call order (empty unless awaiting approval)."""
        turn = self._turn
        if turn is None or not turn.pending:
            return []
        return [self._pending_call(turn.calls[p]) for p in turn.pending]

    def defer(self, call_id: str) -> None:
        """Park a handed-out call until a person decides (a hook answered ``Defer()``).

        Raises:
            SessionStateError: No call with this id is waiting for a result.
        """
        turn = self._expect_turn(TurnPhase.RUNNING_TOOLS, "defer a tool call")
        position = turn.positions.get(call_id)
        if position is None or turn.results[position] is not None or position in turn.pending:
            raise SessionStateError(f"no tool call {call_id!r} is waiting for a result")
        turn.pending.append(position)
        turn.pending.sort()
        turn.missing -= 1

    def resolve(
        self,
        approve: Mapping[str, dict[str, Any] | None],
        deny: Mapping[str, str],
    ) -> RunTools | SendRequest | Stopped | Finished:
        """Decide every pending call; continue the turn from where it stopped.

        Args:
            approve: The approved calls' ids, each with the input to run with
                (``None``: the model's own). Edited input is checked against
                the tool's schema; refused input becomes the call's error result.
            deny: The denied calls' ids, each with the reason the model reads.

        Returns:
            The approved calls to run (:class:`RunTools` with ``approved``
            set), or, when none is to run, the next request.

        Raises:
            SessionStateError: No turn awaits approval, a pending call has no
                decision, or a decision names no pending call (nothing changes).
        """
        turn = self._expect_turn(TurnPhase.AWAITING_APPROVAL, "decide tool calls")
        waiting = {turn.calls[p].id: p for p in turn.pending}
        both = sorted(set(approve) & set(deny))
        unknown = sorted((set(approve) | set(deny)) - set(waiting))
        undecided = [cid for cid in waiting if cid not in approve and cid not in deny]
        if both or unknown or undecided:
            problems = [
                f"approved and denied: {both}" if both else "",
                f"not awaiting approval: {unknown}" if unknown else "",
                f"without a decision: {undecided}" if undecided else "",
            ]
            raise SessionStateError(
                "every pending tool call needs one decision ("
                + "; ".join(p for p in problems if p)
                + f"); pending: {list(waiting)}"
            )
        for cid, edited in approve.items():
            if edited is not None and not isinstance(edited, dict):
                raise SessionStateError(f"the approved input of {cid!r} must be a JSON object")
        run: list[ToolCall] = []
        calls = list(turn.calls)
        for position in turn.pending:
            call = calls[position]
            if call.id in deny:
                self._decided(turn, position, str(deny[call.id]))
                continue
            edited = approve[call.id]
            if edited is not None:
                call = calls[position] = ToolCall(call.id, call.name, dict(edited))
                problem = self.check_rewrite(call.name, call.input)
                if problem is not None:
                    problem = INVALID_APPROVAL.format(
                        name=call.name, problems=problem.split(": ", 1)[-1]
                    )
                    self._decided(turn, position, problem, call.input)
                    continue
            run.append(call)
        turn.calls = tuple(calls)
        turn.pending = []
        turn.missing = len(run)
        self._phase = TurnPhase.RUNNING_TOOLS  # type: ignore[misc]  # TurnEngine's slot
        if run:
            return RunTools(tuple(run), NO_REFUSALS, approved=True)
        return self.next_request()

    # -- steps used by the engine ------------------------------------------

    def _defer_marked(self, turn: Turn, refusals: Mapping[str, str]) -> tuple[ToolCall, ...]:
        """Defer the calls of tools marked as needing approval; return the others (to run).

        A refused call (unknown tool, invalid input) is never deferred: it
        will not run whatever a person decides.
        """
        names = self.require_approval
        run: list[ToolCall] = []
        for position, call in enumerate(turn.calls):
            if call.name in names and call.id not in refusals:
                turn.pending.append(position)
            else:
                run.append(call)
        turn.missing -= len(turn.pending)
        return tuple(run)

    def _suspend(self, turn: Turn) -> Finished:
        """Stop the turn until :meth:`resolve`: a reply listing the pending calls."""
        records = list(turn.records)
        records.extend(r for r in turn.batch_records if r is not None)
        reply = Reply._fast(
            text=reply_text(self.history, turn.start),
            stop_reason="tool_use",
            usage=turn.usage.freeze(),
            tool_calls=[record_of(r, self.history) for r in records],
            files=list(turn.files),
            iterations=turn.iterations,
            pending=[self._pending_call(turn.calls[p]) for p in turn.pending],
            output=None,
        )
        self._phase = TurnPhase.AWAITING_APPROVAL  # type: ignore[misc]  # TurnEngine's slot
        return Finished(reply)

    def _pending_call(self, call: ToolCall) -> PendingCall:
        return PendingCall._fast(
            call_id=call.id, name=call.name, input=call.input, backend=self._backend_of(call.name)
        )

    def _backend_of(self, name: str) -> str:
        spec = self._specs.get(name)
        return spec.backend if spec is not None else NO_BACKEND

    def _decided(
        self, turn: Turn, position: int, text: str, input: dict[str, Any] | None = None
    ) -> None:
        """Give a pending call its error result (denied, or edited into invalid input)."""
        call = turn.calls[position]
        turn.results[position] = ToolResultBlock._fast(
            type="tool_result", tool_use_id=call.id, content=text, is_error=True
        )
        turn.batch_records[position] = ToolCallRecord._fast(
            call_id=call.id,
            name=call.name,
            input=call.input if input is None else input,
            backend=self._backend_of(call.name),
            output=text,
            is_error=True,
            exit_code=None,
        )


def approval_names(names: Collection[str]) -> frozenset[str]:
    """The tool names needing approval, checked (a bare string is a common slip)."""
    if isinstance(names, str):
        raise TypeError("require_approval takes a collection of tool names, not one string")
    return frozenset(names)
