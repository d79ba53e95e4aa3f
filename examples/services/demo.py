"""Default factories of the service examples: offline by default, Claude with a key.

Without ``ANTHROPIC_API_KEY`` each conversation gets a
:class:`~conjure_async.testing.ScriptedModel` (scripted, not Claude) that
answers every message by running two real tools on the Local backend (a
``bash_tool`` command and ``create_file``) and then summarizing what they
did. With the key, each conversation talks to Claude through
:class:`~conjure_async.models.AnthropicModel`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conjure_async import Session, load_skills
from conjure_async.backends import Backend, LocalBackend
from conjure_async.messages import MessagesRequest, MessagesResponse, TextBlock, ToolResultBlock
from conjure_async.store import SessionStore as ConversationStore
from conjure_async.store import SQLiteStore
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

__all__ = [
    "SKILLS_DIR",
    "default_backend_factory",
    "demo_model",
    "describe_model",
    "model_factory_from_env",
    "session_factory",
    "sqlite_store_from_env",
]

SKILLS_DIR = Path(__file__).resolve().parent.parent / "skills"
"""The example skills offered to the model."""


def _user_text(request: MessagesRequest) -> str:
    last = request.messages[-1]
    if isinstance(last.content, str):
        return last.content
    return " ".join(b.text for b in last.content if isinstance(b, TextBlock))


def _demo_step(request: MessagesRequest) -> MessagesResponse:
    last = request.messages[-1]
    results = (
        [b for b in last.content if isinstance(b, ToolResultBlock)]
        if isinstance(last.content, list)
        else []
    )
    if not results:
        said = _user_text(request)
        return tool_use_response(
            tool_call(
                "bash_tool",
                {
                    "command": f"echo {shlex.quote('You said: ' + said)} && ls",
                    "description": "Echo the message and list the working directory",
                },
            ),
            tool_call(
                "create_file",
                {
                    "path": "notes.md",
                    "file_text": f"# Notes\n\nThe user said: {said}\n",
                    "description": "Save the message",
                },
            ),
            text="Let me run a command and write that down.",
        )
    echoed = str(results[0].content).strip()
    return text_response(
        f"Done. The command printed:\n\n{echoed}\n\nI also saved your message in notes.md."
    )


def demo_model(*, delay: float = 0.0) -> ScriptedModel:
    """A scripted model for offline demos: every message runs ``bash_tool`` and ``create_file``.

    Args:
        delay: Seconds each model call takes (makes the live stream visible).
    """
    return ScriptedModel(_demo_step, delay=delay, text_chunk=6, model_name="scripted-demo")


def describe_model(model: object) -> dict[str, Any]:
    """What the chat page says about a model: its name, and whether it is scripted.

    Served as ``GET /model``; the page shows it above the conversation, so
    nobody takes the offline demo's scripted answers for Claude's.
    """
    name = getattr(model, "model_name", None) or type(model).__name__
    return {"model": str(name), "scripted": isinstance(model, ScriptedModel)}


@asynccontextmanager
async def model_factory_from_env(*, delay: float = 0.3) -> AsyncIterator[Callable[[], Any]]:
    """Yield a model factory: Claude when ``ANTHROPIC_API_KEY`` is set, else :func:`demo_model`.

    With a key, every conversation shares one ``AnthropicModel`` (one HTTP
    connection pool), closed when the block ends; ``CONJURE_MODEL`` picks the
    model (default: ``AnthropicModel``'s).

    Args:
        delay: Seconds each scripted model call takes (offline only).
    """
    if not os.environ.get("ANTHROPIC_API_KEY"):
        yield lambda: demo_model(delay=delay)
        return
    from conjure_async.models import AnthropicModel  # noqa: PLC0415 - only with a key

    name = os.environ.get("CONJURE_MODEL")
    claude = AnthropicModel(name) if name else AnthropicModel()
    async with claude:
        yield lambda: claude


def default_backend_factory() -> Callable[[], Backend]:
    """A new :class:`LocalBackend` with the example skills, per conversation."""
    skills = load_skills(SKILLS_DIR)
    return lambda: LocalBackend(skills)


def session_factory(
    model_factory: Callable[[], Any],
    backend_factory: Callable[[], Backend | list[Backend]],
    *,
    conversation_store: ConversationStore | None = None,
    **session_options: Any,
) -> Callable[[str], Session[Any]]:
    """Build the live store's session factory from a model factory and a backend factory.

    Args:
        model_factory: Returns the api callback of a new conversation.
        backend_factory: Returns the backend(s) of a new conversation (each
            conversation needs its own: a backend serves one session).
        conversation_store: Where conversations are saved
            (:mod:`conjure_async.store`); each session is bound to its
            conversation there, so a restarted service or another worker
            process continues it. ``None``: conversations live in memory only.
        **session_options: Passed to :class:`Session` (``system``,
            ``tool_timeout``, ...).
    """

    def make(conversation_key: str) -> Session[Any]:
        # Session ids stay random (ids from URLs are untrusted); the stored
        # conversation is keyed by tenant and conversation id.
        if conversation_store is None:
            return Session(backend_factory(), model=model_factory(), **session_options)
        return Session(
            backend_factory(),
            model=model_factory(),
            store=conversation_store,
            conversation_id=conversation_key,
            **session_options,
        )

    return make


def sqlite_store_from_env(default: str = "conversations.db") -> SQLiteStore:
    """The conversations' SQLite file: ``CONJURE_STORE``, else ``default`` (in the working dir)."""
    return SQLiteStore(os.environ.get("CONJURE_STORE") or default)
