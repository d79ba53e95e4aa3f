"""The fake API's context management: compaction blocks, context edits, and what a request costs.

:func:`prepare` turns a request body into the prompt the model would read:
everything before the last ``compaction`` block dropped (a block whose
``content`` is null is a failed compaction and changes nothing), then the
context edits applied (``clear_thinking_20251015`` keeps the thinking of the
last N assistant turns; ``clear_tool_uses_20250919`` replaces the oldest tool
results past the trigger with a placeholder, keeping the last ``keep``), then
rendered for the prompt cache. A compaction edit whose trigger the prompt
reaches makes :func:`compaction_block` write the summary.

Each edit needs its beta header (``compact-2026-01-12``,
``context-management-2025-06-27``), as the API's ``context_management``
field does; an unknown edit, a trigger under the API's minimum or a thinking
edit after the tool-use one are 400s.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from conjure_async.testing._fake._accounting import Rendered, render
from conjure_async.testing._fake._http import HTTPError
from conjure_async.testing._fake._validate import check_request

__all__ = [
    "CLEARED",
    "COMPACTION_BETA",
    "CONTEXT_EDITING_BETA",
    "ContextPlan",
    "Prepared",
    "compaction_block",
    "prepare",
]

COMPACTION_BETA: Final = "compact-2026-01-12"
CONTEXT_EDITING_BETA: Final = "context-management-2025-06-27"
MIN_COMPACTION_TRIGGER: Final = 50_000
CLEARED: Final = "[This tool result was cleared to save context.]"
"""What a cleared tool result says."""

_BETAS = {
    "compact_20260112": COMPACTION_BETA,
    "clear_tool_uses_20250919": CONTEXT_EDITING_BETA,
    "clear_thinking_20251015": CONTEXT_EDITING_BETA,
}


@dataclass(slots=True)
class ContextPlan:
    """A request's ``context_management`` edits, checked."""

    clear_thinking: dict[str, Any] | None = None
    clear_tool_uses: dict[str, Any] | None = None
    compact: dict[str, Any] | None = None

    @property
    def compact_trigger(self) -> int:
        """Input tokens at which the compaction edit compacts."""
        assert self.compact is not None
        trigger = self.compact.get("trigger") or {}
        return int(trigger.get("value", 150_000))


@dataclass(slots=True)
class Prepared:
    """A request as the model reads it."""

    messages: list[dict[str, Any]]
    """The messages after compaction blocks and context edits."""
    rendered: Rendered
    plan: ContextPlan | None
    applied: list[dict[str, Any]] = field(default_factory=list)
    """The context edits applied, as the response reports them."""
    original_tokens: int = 0
    """The prompt's tokens before the context edits."""


def _plan(body: Mapping[str, Any], betas: Sequence[str]) -> ContextPlan | None:
    managed = body.get("context_management")
    if managed is None:
        return None
    edits = managed.get("edits") if isinstance(managed, Mapping) else None
    if not isinstance(edits, list):
        raise HTTPError(400, "context_management.edits: Field required")
    plan = ContextPlan()
    for index, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, Mapping) else None
        beta = _BETAS.get(str(kind))
        if beta is None:
            raise HTTPError(400, f"context_management.edits.{index}: unknown edit type {kind!r}")
        if beta not in betas:
            raise HTTPError(
                400,
                f"context_management.edits.{index}: {kind} requires the "
                f"'anthropic-beta: {beta}' header",
            )
        assert isinstance(edit, Mapping)
        if kind == "clear_thinking_20251015":
            if plan.clear_tool_uses is not None:
                raise HTTPError(
                    400, "clear_thinking_20251015 must come before clear_tool_uses_20250919"
                )
            plan.clear_thinking = dict(edit)
        elif kind == "clear_tool_uses_20250919":
            plan.clear_tool_uses = dict(edit)
        else:
            plan.compact = dict(edit)
            if plan.compact_trigger < MIN_COMPACTION_TRIGGER:
                raise HTTPError(
                    400,
                    f"context_management.edits.{index}.trigger.value: must be at least "
                    f"{MIN_COMPACTION_TRIGGER}",
                )
    return plan


def _from_last_compaction(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages the API reads: from the last (successful) compaction block on."""
    for m_index in range(len(messages) - 1, -1, -1):
        content = messages[m_index].get("content")
        if not isinstance(content, list):
            continue
        for b_index in range(len(content) - 1, -1, -1):
            block = content[b_index]
            if isinstance(block, Mapping) and block.get("type") == "compaction":
                if block.get("content") is None:
                    continue  # a failed compaction: a no-op
                first = {**messages[m_index], "content": list(content[b_index:])}
                return [first, *(dict(m) for m in messages[m_index + 1 :])]
    return [dict(m) for m in messages]


def prepare(body: Mapping[str, Any], betas: Sequence[str]) -> Prepared:
    """The prompt a request body makes, after compaction blocks and context edits.

    Raises:
        HTTPError: A malformed ``context_management``, a missing beta, a
            breakpoint the API refuses, or a request shape it refuses (see
            :func:`check_request`).
    """
    check_request(body)
    plan = _plan(body, betas)
    messages = _from_last_compaction(body.get("messages") or [])

    def rendered_for(items: list[dict[str, Any]]) -> Rendered:
        return render(
            str(body.get("model", "")),
            body.get("tools"),
            body.get("system"),
            items,
            automatic=body.get("cache_control"),
        )

    rendered = rendered_for(messages)
    prepared = Prepared(messages, rendered, plan, original_tokens=rendered.total)
    if plan is None:
        return prepared
    if plan.clear_thinking is not None:
        messages, applied = _clear_thinking(messages, plan.clear_thinking)
        if applied is not None:
            after = rendered_for(messages)
            applied["cleared_input_tokens"] = prepared.rendered.total - after.total
            prepared.messages, prepared.rendered = messages, after
            prepared.applied.append(applied)
    if plan.clear_tool_uses is not None:
        edit = plan.clear_tool_uses
        if _triggered(edit, prepared.rendered.total, prepared.messages):
            cleared, count = _clear_tool_uses(prepared.messages, edit)
            after = rendered_for(cleared)
            freed = prepared.rendered.total - after.total
            least = (edit.get("clear_at_least") or {}).get("value", 0)
            if count and freed >= least:
                prepared.messages, prepared.rendered = cleared, after
                prepared.applied.append(
                    {
                        "type": "clear_tool_uses_20250919",
                        "cleared_tool_uses": count,
                        "cleared_input_tokens": freed,
                    }
                )
    return prepared


def _clear_thinking(
    messages: list[dict[str, Any]], edit: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    keep = edit.get("keep", {"type": "thinking_turns", "value": 1})
    if keep == "all" or (isinstance(keep, Mapping) and keep.get("type") == "all"):
        return messages, None
    turns = int(keep.get("value", 1)) if isinstance(keep, Mapping) else 1
    with_thinking = [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "assistant"
        and isinstance(m.get("content"), list)
        and any(_is_thinking(b) for b in m["content"])
    ]
    old = with_thinking[:-turns] if turns > 0 else with_thinking
    changed = 0
    result = list(messages)
    for index in old:
        kept = [b for b in result[index]["content"] if not _is_thinking(b)]
        if kept:
            result[index] = {**result[index], "content": kept}
            changed += 1
    if not changed:
        return messages, None
    return result, {"type": "clear_thinking_20251015", "cleared_thinking_turns": changed}


def _is_thinking(block: Any) -> bool:
    return isinstance(block, Mapping) and block.get("type") in {"thinking", "redacted_thinking"}


def _tool_uses(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        block
        for m in messages
        if m.get("role") == "assistant" and isinstance(m.get("content"), list)
        for block in m["content"]
        if isinstance(block, Mapping) and block.get("type") == "tool_use"
    ]


def _triggered(edit: Mapping[str, Any], tokens: int, messages: Sequence[Mapping[str, Any]]) -> bool:
    trigger = edit.get("trigger") or {"type": "input_tokens", "value": 100_000}
    value = int(trigger.get("value", 100_000))
    if trigger.get("type") == "tool_uses":
        return len(_tool_uses(messages)) >= value
    return tokens >= value


def _clear_tool_uses(
    messages: list[dict[str, Any]], edit: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    """The messages with the oldest tool uses' results cleared, and how many were."""
    keep = int((edit.get("keep") or {}).get("value", 3))
    excluded = set(edit.get("exclude_tools") or ())
    inputs = edit.get("clear_tool_inputs") or False
    uses = [u for u in _tool_uses(messages) if u.get("name") not in excluded]
    old = uses[: max(len(uses) - keep, 0)]
    ids = {str(u.get("id")) for u in old}
    clear_input = {
        str(u.get("id"))
        for u in old
        if inputs is True or (isinstance(inputs, list) and u.get("name") in inputs)
    }
    count = 0
    result = copy.deepcopy(messages)
    for message in result:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result" and block.get("tool_use_id") in ids:
                if block.get("content") != CLEARED:
                    block["content"] = CLEARED
                    count += 1
            elif block.get("type") == "tool_use" and block.get("id") in clear_input:
                block["input"] = {}
    return result, count


_summaries = itertools.count(1)


def compaction_block(prepared: Prepared) -> dict[str, Any]:
    """The ``compaction`` block summarizing ``prepared``'s conversation."""
    number = next(_summaries)
    instructions = (prepared.plan.compact or {}).get("instructions") if prepared.plan else None
    summary = (
        f"Summary {number} of the conversation so far: {len(prepared.messages)} messages, "
        f"{prepared.rendered.total} input tokens."
    )
    if instructions:
        summary += f" (Written following: {instructions})"
    return {
        "type": "compaction",
        "content": summary,
        "encrypted_content": f"fake-compaction-{number:06d}",
    }
