"""conjure_async: an asyncio-first runtime that lets Claude use Agent Skills.

One API, ``await session.chat(...)``, over four execution backends: Local
(host subprocesses), Docker (sandbox containers), Anthropic (hosted code
execution containers) and Native (async Python callables)::

    from conjure_async import Session, load_skills
    from conjure_async.backends import LocalBackend

    skills = load_skills("path/to/skills")  # a skill folder, a folder of them, a .skill
    async with Session(LocalBackend(skills), model=model) as session:
        reply = await session.chat("Analyze app.log")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._caching import PromptCaching
from conjure_async._context import Compaction, ContextEditing
from conjure_async._decisions import Approve, Defer
from conjure_async._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackendError,
    BadRequestError,
    ConflictError,
    ConjureError,
    ContainerDiedError,
    ConversationConflictError,
    DockerError,
    DockerUnavailableError,
    ImageNotFoundError,
    InternalServerError,
    MaxIterationsError,
    McpError,
    MissingDependencyError,
    ModelError,
    ModelResponseError,
    NotFoundError,
    OutputValidationError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    SandboxUnavailableError,
    SessionError,
    SessionStateError,
    SkillConflictError,
    SkillError,
    SkillNotFoundError,
    SkillPackageError,
    SkillParseError,
    SkillResourceError,
    SkillValidationError,
    StoreError,
    ToolConflictError,
    UsageLimitError,
)
from conjure_async._limits import UsageLimits
from conjure_async._public import publish
from conjure_async._session import AfterToolCall, BeforeToolCall, Deny, Rewrite, Session
from conjure_async.backends._base import ToolCall, ToolContext, ToolResult
from conjure_async.egress._policy import EgressPolicy
from conjure_async.events import CreatedFile, Event, Reply
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.pricing import Cost
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
    "Approve",
    "AuthenticationError",
    "BackendError",
    "BadRequestError",
    "BeforeToolCall",
    "Compaction",
    "ConflictError",
    "ConjureError",
    "ContainerDiedError",
    "ContextEditing",
    "ConversationConflictError",
    "Cost",
    "CreatedFile",
    "Defer",
    "Deny",
    "DockerError",
    "DockerUnavailableError",
    "EgressPolicy",
    "Event",
    "ImageNotFoundError",
    "InternalServerError",
    "MaxIterationsError",
    "McpError",
    "MessagesRequest",
    "MessagesResponse",
    "MissingDependencyError",
    "ModelError",
    "ModelResponseError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "PromptCaching",
    "RateLimitError",
    "Reply",
    "RequestTooLargeError",
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
    "SkillResourceError",
    "SkillValidationError",
    "StoreError",
    "ToolCall",
    "ToolConflictError",
    "ToolContext",
    "ToolResult",
    "UsageLimitError",
    "UsageLimits",
    "load_skills",
]

publish(__name__, {name: globals()[name] for name in __all__ if name in globals()})


def __getattr__(name: str) -> Any:
    if name == "AnthropicModel":  # through its public package, which publishes it
        return importlib.import_module("conjure_async.models").AnthropicModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
