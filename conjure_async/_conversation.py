"""One chat, around the turn: approvals to apply, a store to keep in step, typed output.

:meth:`Session.chat <conjure_async.Session.chat>` and ``stream`` call
:func:`run_chat`, which wraps the session's turn loop (``Session._run_turn``):

1. a session bound to a store first takes what another writer saved since;
2. the turn starts from the user's message, or (``approvals=``) from the
   pending calls, decided by the engine's :meth:`resolve` rule;
3. with ``output_type``, the reply's text is validated (and the errors sent
   back to the model, up to ``output_retries`` times: :mod:`conjure_async._output`);
4. the conversation is saved at the end, whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conjure_async._decisions import split_decisions
from conjure_async._exceptions import SessionStateError
from conjure_async._turn import TurnPhase

if TYPE_CHECKING:
    from conjure_async._session import Session
    from conjure_async._tool_execution import Emit
    from conjure_async.events import Reply

__all__ = ["run_chat"]


async def run_chat(
    session: Session[Any],
    message: str | list[dict[str, Any]] | None,
    emit: Emit | None,
    *,
    approvals: Mapping[str, Any] | None = None,
    output_type: Any = None,
    output_retries: int = 2,
) -> Reply[Any]:
    """Run one chat of ``session`` (its lock held by the caller); see the module docstring."""
    if (message is None) == (approvals is None):
        raise ValueError(
            "give a message, or approvals for the pending tool calls (not both, not neither)"
        )
    binding = session._binding
    if binding is not None:
        await binding.refresh(session)
    engine = session._engine
    if approvals is None and engine.phase is TurnPhase.AWAITING_APPROVAL:
        pending = [call.call_id for call in engine.pending]
        raise SessionStateError(
            f"tool calls await approval: {pending}; answer each with "
            "session.chat(approvals={call_id: Approve() | Deny(reason)}) before a new message"
        )
    output = None
    if output_type is not None:
        from conjure_async._output import OutputSpec  # noqa: PLC0415 - pydantic's heavier parts

        output = OutputSpec(output_type, retries=output_retries)
    start = None
    if approvals is not None:
        approve, deny = split_decisions(approvals)
        start = engine.resolve(approve, deny)
    session._meter.begin_chat()  # the chat's own usage and limits (all its turns)
    error: BaseException | None = None
    try:
        if output is None:
            return await session._run_turn(message or "", emit, start)
        return await output.run(session, message or "", emit, start)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if binding is not None:
            await binding.save_after(session, error)
