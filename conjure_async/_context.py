"""Server-side context management: compaction and context editing, as session options.

Both are API betas that ride on every request of a session as
``context_management.edits`` with their ``anthropic-beta`` header:

* :class:`Compaction` (``compact_20260112``, beta ``compact-2026-01-12``):
  when a request's input reaches the trigger, the API summarizes the
  conversation into a ``compaction`` block that starts the response; later
  requests ignore everything before it. The session keeps the block in the
  history (the API requires it sent back) and, with ``pause_after=True``,
  continues the turn after the pause like a ``pause_turn``.
* :class:`ContextEditing` (``clear_thinking_20251015`` /
  ``clear_tool_uses_20250919``, beta ``context-management-2025-06-27``):
  the API clears old tool results (and thinking) from what the model sees;
  the history keeps them, and the response reports the applied edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "COMPACTION_BETA",
    "CONTEXT_EDITING_BETA",
    "Compaction",
    "ContextEditing",
    "context_management",
]

COMPACTION_BETA: Final = "compact-2026-01-12"
CONTEXT_EDITING_BETA: Final = "context-management-2025-06-27"
MIN_COMPACTION_TRIGGER: Final = 50_000
"""The smallest compaction trigger the API accepts (input tokens)."""


@dataclass(frozen=True, slots=True)
class Compaction:
    """Server-side compaction of a long conversation (an API beta).

    ::

        Session(backend, model=model, compaction=Compaction(trigger=120_000))

    Args:
        trigger: Input tokens at which the API summarizes the conversation
            (at least 50,000; the API's default is 150,000).
        pause_after: Stop after the summary (``stop_reason="compaction"``);
            the session sends the turn back and it continues, like a
            ``pause_turn``. Lets a ``stream()`` reader see the
            ``compacted`` event before the model goes on.
        instructions: Replaces the API's summarization prompt.

    Raises:
        ValueError: ``trigger`` is below 50,000, or ``instructions`` is empty.
    """

    trigger: int = 150_000
    pause_after: bool = False
    instructions: str | None = None

    def __post_init__(self) -> None:
        if self.trigger < MIN_COMPACTION_TRIGGER:
            raise ValueError(
                f"Compaction trigger must be at least {MIN_COMPACTION_TRIGGER:,} input tokens "
                f"(the API's minimum), not {self.trigger:,}"
            )
        if self.instructions is not None and not self.instructions.strip():
            raise ValueError("Compaction instructions must not be empty (use None for the default)")

    def edit(self) -> dict[str, Any]:
        """The ``compact_20260112`` edit sent with each request."""
        edit: dict[str, Any] = {
            "type": "compact_20260112",
            "trigger": {"type": "input_tokens", "value": self.trigger},
            "pause_after_compaction": self.pause_after,
        }
        if self.instructions is not None:
            edit["instructions"] = self.instructions
        return edit


@dataclass(frozen=True, slots=True)
class ContextEditing:
    """Let the API clear old tool results (and thinking) from long contexts (an API beta).

    The history keeps everything; only what the model sees is edited. The
    edits the API applied come back on each response: ``context_edited``
    events and :attr:`Session.context_edits <conjure_async.Session.context_edits>`.
    Clearing invalidates the prompt cache from the cleared point on, so
    ``clear_at_least`` makes each clearing worth the new cache write::

        Session(backend, model=model,
                context_editing=ContextEditing(trigger=60_000, keep=5, clear_at_least=20_000))

    Args:
        trigger: Input tokens at which tool results are cleared (API default 100,000).
        keep: The most recent tool uses kept (API default 3).
        clear_at_least: Clear nothing unless at least this many input tokens go.
        exclude_tools: Tools whose results are never cleared.
        clear_tool_inputs: Also clear the ``tool_use`` inputs (all, or of the named tools).
        clear_tool_uses: Send the tool-result clearing edit at all.
        keep_thinking_turns: Also clear thinking blocks, keeping those of the
            last N assistant turns (``"all"``: keep every one); ``None``:
            no thinking edit (the API's model default applies).

    Raises:
        ValueError: A count is not positive, or nothing would be edited.
    """

    trigger: int = 100_000
    keep: int = 3
    clear_at_least: int | None = None
    exclude_tools: Sequence[str] = ()
    clear_tool_inputs: bool | Sequence[str] = False
    clear_tool_uses: bool = True
    keep_thinking_turns: int | Literal["all"] | None = None

    def __post_init__(self) -> None:
        if self.trigger < 1 or self.keep < 0:
            raise ValueError("ContextEditing trigger must be positive and keep not negative")
        if self.clear_at_least is not None and self.clear_at_least < 1:
            raise ValueError("ContextEditing clear_at_least must be positive")
        turns = self.keep_thinking_turns
        if isinstance(turns, int) and turns < 1:
            raise ValueError("ContextEditing keep_thinking_turns must be positive (or 'all')")
        if not self.clear_tool_uses and turns is None:
            raise ValueError("ContextEditing with clear_tool_uses=False needs keep_thinking_turns")

    def edits(self) -> list[dict[str, Any]]:
        """The edits sent with each request (thinking first, as the API requires)."""
        edits: list[dict[str, Any]] = []
        turns = self.keep_thinking_turns
        if turns is not None:
            keep: Any = "all" if turns == "all" else {"type": "thinking_turns", "value": turns}
            edits.append({"type": "clear_thinking_20251015", "keep": keep})
        if self.clear_tool_uses:
            edit: dict[str, Any] = {
                "type": "clear_tool_uses_20250919",
                "trigger": {"type": "input_tokens", "value": self.trigger},
                "keep": {"type": "tool_uses", "value": self.keep},
            }
            if self.clear_at_least is not None:
                edit["clear_at_least"] = {"type": "input_tokens", "value": self.clear_at_least}
            if self.exclude_tools:
                edit["exclude_tools"] = list(self.exclude_tools)
            inputs = self.clear_tool_inputs
            if inputs:
                edit["clear_tool_inputs"] = inputs if isinstance(inputs, bool) else list(inputs)
            edits.append(edit)
        return edits


def context_management(
    compaction: Compaction | None, editing: ContextEditing | None
) -> tuple[dict[str, Any], list[str]] | None:
    """The request's ``context_management`` and the betas it needs, or ``None`` for neither."""
    if compaction is None and editing is None:
        return None
    edits: list[dict[str, Any]] = []
    betas: list[str] = []
    if editing is not None:
        edits.extend(editing.edits())
        betas.append(CONTEXT_EDITING_BETA)
    if compaction is not None:
        edits.append(compaction.edit())
        betas.append(COMPACTION_BETA)
    return {"edits": edits}, betas
