"""Decisions about tool calls that need no hook machinery: ``Approve`` and ``Defer``.

``Defer()`` is what a ``before_tool_call`` hook returns to leave a call to a
person: the turn stops with the call pending (see
:attr:`Reply.pending <conjure_async.events.Reply.pending>`). The answer comes
later through ``session.chat(approvals={call_id: decision})``, where a
decision is ``Approve()`` (maybe with edited ``input``), ``Deny(reason)`` or
``Rewrite(input)`` (the same as ``Approve(input=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from conjure_async._tool_execution import Deny, Rewrite

__all__ = ["Approvals", "Approve", "Defer", "split_decisions"]


@dataclass(frozen=True, slots=True)
class Approve:
    """A person approved a pending call; ``input`` replaces the model's arguments when given."""

    input: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Defer:
    """Returned by a ``before_tool_call`` hook: leave this call to a person (the turn stops)."""


Approvals: TypeAlias = "Mapping[str, Approve | Deny | Rewrite]"
"""Decisions for pending calls, by ``call_id``."""


def split_decisions(
    approvals: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """The approved calls (with their input, if edited) and the denied ones (with the reason).

    Raises:
        TypeError: A decision is not ``Approve``, ``Deny`` or ``Rewrite``.
    """
    from conjure_async._tool_execution import Deny, Rewrite  # noqa: PLC0415 - a cycle otherwise

    approve: dict[str, dict[str, Any] | None] = {}
    deny: dict[str, str] = {}
    for call_id, decision in approvals.items():
        if isinstance(decision, Approve | Rewrite):
            approve[call_id] = decision.input
        elif isinstance(decision, Deny):
            deny[call_id] = decision.message
        else:
            raise TypeError(
                f"the decision for {call_id!r} must be Approve(), Deny(reason) or "
                f"Rewrite(input), not {decision!r}"
            )
    return approve, deny
