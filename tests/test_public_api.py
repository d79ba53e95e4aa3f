"""The public surface is curated: nothing leaks by accident."""

from __future__ import annotations

import importlib

import pytest

import conjure_async

EXPECTED = {
    "conjure_async": [
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
    ],
    "conjure_async.backends": [
        "AnthropicBackend",
        "AnthropicSkill",
        "Backend",
        "BackendContext",
        "DockerBackend",
        "EgressPolicy",
        "LocalBackend",
        "NativeBackend",
        "NativeSkill",
        "NativeTool",
        "ToolCall",
        "ToolChunk",
        "ToolContext",
        "ToolEvent",
        "ToolResult",
        "WarmPool",
        "build_image",
        "build_offline_image",
        "sweep_orphans",
        "tool",
    ],
    "conjure_async.pricing": [
        "Cost",
        "ModelPrice",
        "PRICES",
        "PRICES_AS_OF",
        "estimate_cost",
        "price_for",
    ],
    "conjure_async.mcp": [
        "McpBackend",
        "McpSkillsBackend",
        "SkillsServer",
    ],
    "conjure_async.store": [
        "MemoryStore",
        "PostgresStore",
        "SQLiteStore",
        "SessionStore",
        "StoredConversation",
    ],
    "conjure_async.temporal": [
        "BackendFactory",
        "BackendSpec",
        "BlobError",
        "BlobStore",
        "ClaimCheckCodec",
        "DurableConfig",
        "DurableSession",
        "FileBlobStore",
        "SessionWorkflow",
        "claim_check_converter",
        "conjure_worker",
        "session_alive",
    ],
    "conjure_async.testing": [
        "DEFAULT_IGNORED",
        "Delay",
        "DropConnection",
        "EXAMPLE_SKILLS",
        "ErrorResponse",
        "FakeAnthropicServer",
        "MalformedJSON",
        "MultipartPart",
        "PlainJSON",
        "RecordedRequest",
        "ScriptStep",
        "ScriptedModel",
        "StreamDrop",
        "StreamError",
        "StreamPings",
        "StreamRaw",
        "assert_events",
        "collect",
        "message_stream_events",
        "summarize",
        "text_response",
        "tool_call",
        "tool_use_response",
    ],
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_public_surface_is_pinned_and_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    assert module.__all__ == EXPECTED[module_name]


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_every_exported_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_every_exception_derives_from_conjure_error() -> None:
    from conjure_async import _exceptions

    for name in _exceptions.__all__:
        obj = getattr(_exceptions, name)
        if isinstance(obj, type):
            assert issubclass(obj, conjure_async.ConjureError), name
