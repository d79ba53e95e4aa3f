"""Every exception of the tree survives pickling and copying whole (processes, task queues)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import conjure_async
from conjure_async import (
    APIError,
    APIStatusError,
    ConjureError,
    ContainerDiedError,
    ConversationConflictError,
    MaxIterationsError,
    McpError,
    MissingDependencyError,
    OutputValidationError,
    SkillPackageError,
    SkillParseError,
    SkillResourceError,
    SkillValidationError,
    UsageLimitError,
)

BUILDERS: dict[type[ConjureError], Callable[[], ConjureError]] = {
    MissingDependencyError: lambda: MissingDependencyError("aiodocker", "docker"),
    SkillParseError: lambda: SkillParseError("skills/a/SKILL.md", "bad YAML", line=3),
    SkillValidationError: lambda: SkillValidationError(["name: missing", "description: long"]),
    SkillPackageError: lambda: SkillPackageError("a.skill", "zip slip"),
    SkillResourceError: lambda: SkillResourceError("skills/a", "../x", "escapes the skill"),
    MaxIterationsError: lambda: MaxIterationsError(3),
    ContainerDiedError: lambda: ContainerDiedError("died", oom_killed=True, exit_code=137),
    McpError: lambda: McpError("connection closed", target="mcp-server-time", code=-32000),
    UsageLimitError: lambda: UsageLimitError(
        "input_tokens", "session", maximum=1000, used=990, needed=120
    ),
    ConversationConflictError: lambda: ConversationConflictError(
        "c1", expected_version=1, actual_version=2, state={"messages": []}
    ),
    OutputValidationError: lambda: OutputValidationError(
        "x: field required", retries=2, output="{}"
    ),
}
"""Classes whose ``__init__`` is not ``(message)``; the others are built generically below."""


def _tree(root: type[ConjureError] = ConjureError) -> Iterator[type[ConjureError]]:
    yield root
    for sub in root.__subclasses__():
        yield from _tree(sub)


def _build(cls: type[ConjureError]) -> ConjureError:
    if cls in BUILDERS:
        return BUILDERS[cls]()
    if issubclass(cls, APIStatusError):
        return cls(
            "slow down",
            status_code=cls.status or 418,
            error_type="rate_limit_error",
            request_id="req_1",
            headers={"retry-after": "2", "x-api-key": "sk-ant-secret-key"},
        )
    if issubclass(cls, APIError):
        return cls("connection reset", request_id="req_1")
    return cls("it failed")


CLASSES = sorted(set(_tree()), key=lambda cls: cls.__name__)


def test_the_tree_is_walked_whole() -> None:
    """The walk finds every exception the package exports (so a new class is covered)."""
    exported = {
        obj
        for name in conjure_async.__all__
        if isinstance(obj := getattr(conjure_async, name), type) and issubclass(obj, ConjureError)
    }
    assert exported <= set(CLASSES)
    assert len(CLASSES) >= 34


def _same(left: BaseException, right: BaseException) -> dict[str, Any]:
    return {
        "type": (type(left), type(right)),
        "str": (str(left), str(right)),
        "args": (left.args, right.args),
        "attributes": (vars(left), vars(right)),
    }


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_an_exception_survives_a_pickle_round_trip(cls: type[ConjureError]) -> None:
    """Type, message, args, attributes and notes come back unchanged (no doubled message)."""
    error = _build(cls)
    error.add_note("while testing")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        restored = pickle.loads(pickle.dumps(error, protocol=protocol))
        for what, (before, after) in _same(error, restored).items():
            assert after == before, f"protocol {protocol}: {what}"
        assert restored.__notes__ == ["while testing"]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_an_exception_survives_copy(cls: type[ConjureError]) -> None:
    """``copy.copy`` and ``copy.deepcopy`` (which use the same protocol) keep it whole."""
    error = _build(cls)
    for duplicate in (copy.copy(error), copy.deepcopy(error)):
        for what, (before, after) in _same(error, duplicate).items():
            assert after == before, what
