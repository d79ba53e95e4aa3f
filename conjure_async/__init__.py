"""conjure_async: an asyncio-first runtime that lets Claude use Agent Skills.

One API, ``await session.chat(...)``, over four execution backends: Local
(host subprocesses), Docker (sandbox containers), Anthropic (hosted code
execution containers) and Native (async Python callables)::

    from conjure_async import Session, load_skills
    from conjure_async.backends import LocalBackend

    skills = load_skills("examples/skills")
    async with Session(LocalBackend(skills), model=model) as session:
        reply = await session.chat("Analyze app.log")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BackendError,
    ConjureError,
    ContainerDiedError,
    DockerError,
    DockerUnavailableError,
    ImageNotFoundError,
    MaxIterationsError,
    MissingDependencyError,
    ModelError,
    ModelResponseError,
    RateLimitError,
    SandboxUnavailableError,
    SessionError,
    SessionStateError,
    SkillConflictError,
    SkillError,
    SkillNotFoundError,
    SkillPackageError,
    SkillParseError,
    SkillValidationError,
    ToolConflictError,
)
from conjure_async._session import AfterToolCall, BeforeToolCall, Deny, Rewrite, Session
from conjure_async.backends._base import ToolCall, ToolContext, ToolResult
from conjure_async.events import CreatedFile, Event, Reply
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.skills import Skill, SkillRegistry, load_skills

if TYPE_CHECKING:
    from conjure_async.models._anthropic import AnthropicModel

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AfterToolCall",
    "AnthropicModel",
    "BackendError",
    "BeforeToolCall",
    "ConjureError",
    "ContainerDiedError",
    "CreatedFile",
    "Deny",
    "DockerError",
    "DockerUnavailableError",
    "Event",
    "ImageNotFoundError",
    "MaxIterationsError",
    "MessagesRequest",
    "MessagesResponse",
    "MissingDependencyError",
    "ModelError",
    "ModelResponseError",
    "RateLimitError",
    "Reply",
    "Rewrite",
    "SandboxUnavailableError",
    "Session",
    "SessionError",
    "SessionStateError",
    "Skill",
    "SkillConflictError",
    "SkillError",
    "SkillNotFoundError",
    "SkillPackageError",
    "SkillParseError",
    "SkillRegistry",
    "SkillValidationError",
    "ToolCall",
    "ToolConflictError",
    "ToolContext",
    "ToolResult",
    "load_skills",
]


def __getattr__(name: str) -> Any:
    if name == "AnthropicModel":
        return importlib.import_module("conjure_async.models._anthropic").AnthropicModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
