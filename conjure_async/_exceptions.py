"""The one exception tree of conjure_async.

Everything the library raises on purpose derives from :class:`ConjureError`.
Vendor exceptions (httpx2, aiodocker, ``OSError``) are translated at the
boundary where they occur and chained with ``raise ... from``.

A tool's own failure (a command exiting non-zero, a file not found, bad
arguments from the model) is *not* an exception: it becomes an ``is_error``
tool result for the model. Only library misuse and infrastructure failures
raise::

    ConjureError
    ├── MissingDependencyError      an optional extra is not installed (also ImportError)
    ├── SkillError                  loading or validating skills
    │   ├── SkillParseError         SKILL.md frontmatter cannot be parsed (file, line)
    │   ├── SkillValidationError    one or more specification problems (all listed)
    │   ├── SkillPackageError       an unsafe or malformed ``.skill`` package
    │   ├── SkillResourceError      a resource path escapes its skill or cannot be read
    │   └── SkillNotFoundError      no skill of that name
    ├── SessionError                misuse of a session
    │   ├── SessionStateError       not open / already closed / bad restored state
    │   ├── ToolConflictError       two backends offer the same tool name
    │   ├── SkillConflictError      two skills of one session share a name
    │   ├── MaxIterationsError      a chat exceeded its iteration cap
    │   ├── UsageLimitError         a request would go over a usage limit (not sent)
    │   └── OutputValidationError   typed output still invalid after its retries
    ├── StoreError                  a session store failed (database, bad stored data)
    │   └── ConversationConflictError  another writer saved the conversation first
    ├── BackendError                an execution backend's infrastructure failed
    │   ├── SandboxUnavailableError the requested sandbox (bwrap, Docker) cannot run
    │   ├── McpError                an MCP server failed (start, protocol, skills); names it
    │   └── DockerError             Docker engine failures
    │       ├── DockerUnavailableError  the engine cannot be reached
    │       ├── ImageNotFoundError      the sandbox image is missing
    │       └── ContainerDiedError      the session's container died (``oom_killed``)
    └── ModelError                  the model (api callback) failed
        ├── ModelResponseError      the model answered something unusable
        └── APIError                an HTTP API call failed
            ├── APIConnectionError  no response (connection reset, DNS, ...)
            │   └── APITimeoutError the request timed out
            └── APIStatusError      an error status or a mid-stream error event
                ├── BadRequestError, AuthenticationError, PermissionDeniedError,
                ├── NotFoundError, ConflictError, RequestTooLargeError,
                └── RateLimitError, OverloadedError, InternalServerError
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BackendError",
    "BadRequestError",
    "ConflictError",
    "ConjureError",
    "ContainerDiedError",
    "ConversationConflictError",
    "DockerError",
    "DockerUnavailableError",
    "ImageNotFoundError",
    "InternalServerError",
    "MaxIterationsError",
    "McpError",
    "MissingDependencyError",
    "ModelError",
    "ModelResponseError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "SandboxUnavailableError",
    "SessionError",
    "SessionStateError",
    "SkillConflictError",
    "SkillError",
    "SkillNotFoundError",
    "SkillPackageError",
    "SkillParseError",
    "SkillResourceError",
    "SkillValidationError",
    "StoreError",
    "ToolConflictError",
    "UsageLimitError",
    "redact_key_shapes",
    "status_error_class",
]

REDACTED = "[REDACTED]"
"""What a secret is replaced with."""

_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
_AUTH_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})


def redact_key_shapes(text: str) -> str:
    """``text`` with every string shaped like an Anthropic key (``sk-ant-...``) replaced.

    The model errors apply it to their own message, whoever builds them; the
    full redactor (:mod:`conjure_async._redact`) also removes the client's
    exact key and cleans cause chains.
    """
    return _KEY_SHAPE.sub(REDACTED, text) if "sk-ant-" in text else text


class ConjureError(Exception):
    """Base class of every exception conjure_async raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy rebuild an exception as ``cls(*self.args)``, which a subclass
        # with its own __init__ cannot take (``MaxIterationsError(3)`` came back with its
        # message doubled). Rebuild it without calling __init__: ``args`` as they are,
        # then the attributes (and ``__notes__``) from ``__dict__``.
        cls = type(self)
        return (cls.__new__, (cls, *self.args), self.__dict__ or None)


class MissingDependencyError(ConjureError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is required for this feature: pip install 'conjure-async[{extra}]'"
        )


# --- skills -----------------------------------------------------------------


class SkillError(ConjureError):
    """Loading or validating a skill failed."""


class SkillParseError(SkillError):
    """A SKILL.md file could not be parsed.

    Attributes:
        path: The file that failed to parse.
        line: The 1-indexed line where the problem was found, when known.
        reason: What is wrong, without the location.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class SkillValidationError(SkillError):
    """One or more skills break the Agent Skills specification.

    Attributes:
        problems: Every problem found, each a ``Diagnostic`` with file and field.
    """

    def __init__(self, problems: list[Any]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} skill problem{'s' if count != 1 else ''}:\n{lines}")


class SkillPackageError(SkillError):
    """A ``.skill`` package is unsafe (zip-slip, symlink, bomb) or malformed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SkillResourceError(SkillError):
    """A skill resource was requested outside its skill directory, or cannot be read.

    Attributes:
        path: The skill directory.
        resource: The relative path that was requested.
        reason: What is wrong.
    """

    def __init__(self, path: str, resource: str, reason: str) -> None:
        self.path = path
        self.resource = resource
        self.reason = reason
        super().__init__(f"{path}: {resource}: {reason}")


class SkillNotFoundError(SkillError, KeyError):
    """No skill with the requested name is registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "skill not found"


# --- session ----------------------------------------------------------------


class SessionError(ConjureError):
    """The session was used in a way it does not support."""


class SessionStateError(SessionError):
    """The session is not open, already closed, or a restored state is invalid."""


class ToolConflictError(SessionError):
    """Two backends of one session offer a tool with the same name."""


class SkillConflictError(SessionError):
    """Two skills offered in one session (by one backend or two) share a name."""


class MaxIterationsError(SessionError):
    """A chat needed more model calls than ``max_iterations`` allows.

    The history stays consistent: every tool call made has its result.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the chat exceeded max_iterations={limit} model calls")


class UsageLimitError(SessionError):
    """A model request would go over a usage limit; it was not sent.

    Raised before the request (see :class:`~conjure_async.UsageLimits`); the
    history stays consistent, as after any failed model call.

    Attributes:
        limit: ``"requests"``, ``"input_tokens"`` or ``"output_tokens"``.
        scope: ``"chat"`` or ``"session"``.
        maximum: The limit's value.
        used: What the chat or session used before this request.
        needed: What the request would add (at least).
    """

    def __init__(self, limit: str, scope: str, *, maximum: int, used: int, needed: int) -> None:
        self.limit = limit
        self.scope = scope
        self.maximum = maximum
        self.used = used
        self.needed = needed
        super().__init__(
            f"the {scope}'s {limit} limit of {maximum} would be exceeded: {used} used, "
            f"the next request needs {needed} more; it was not sent"
        )


class OutputValidationError(SessionError):
    """The model's typed output (``output_type``) stayed invalid after every retry.

    The history keeps the exchange (each invalid answer and the errors sent
    back), so the conversation can go on.

    Attributes:
        errors: The validation errors of the last answer, as text.
        retries: How many times the errors were sent back to the model.
        output: The last answer as received (JSON text), for diagnostics.
    """

    def __init__(self, errors: str, *, retries: int, output: str) -> None:
        self.errors = errors
        self.retries = retries
        self.output = output
        super().__init__(
            f"the model's output did not validate after {retries} "
            f"retr{'y' if retries == 1 else 'ies'}: {errors}"
        )


# --- stores -----------------------------------------------------------------


class StoreError(ConjureError):
    """A session store failed: the database could not be reached, or stored data is unusable."""


class ConversationConflictError(StoreError):
    """Another writer saved this conversation since it was loaded (optimistic concurrency).

    Nothing is lost: the store keeps the other writer's state, and this
    writer's unsaved state is in :attr:`state`. Load the conversation again
    (a bound session does so at its next chat) and retry.

    Attributes:
        conversation_id: The conversation.
        expected_version: The version this writer loaded (0: none).
        actual_version: The version in the store (0: none, deleted).
        state: The state that was not saved.
    """

    def __init__(
        self,
        conversation_id: str,
        *,
        expected_version: int,
        actual_version: int,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.state = dict(state) if state is not None else None
        super().__init__(
            f"conversation {conversation_id!r} was saved by another writer: expected "
            f"version {expected_version}, the store has {actual_version}; load it again and retry"
        )


# --- backends ---------------------------------------------------------------


class BackendError(ConjureError):
    """An execution backend's infrastructure failed (not the tool itself)."""


class SandboxUnavailableError(BackendError):
    """The requested sandbox cannot run here (e.g. ``bwrap`` is not installed)."""


class McpError(BackendError):
    """An MCP server could not be started or reached, or broke the protocol.

    Also raised for skills an MCP server publishes that cannot be used (a
    digest that does not match, an unsafe path).

    Attributes:
        target: The server tried: its command line or URL (never its
            environment or headers).
        code: The JSON-RPC error code, when the server sent one.
    """

    def __init__(self, message: str, *, target: str, code: int | None = None) -> None:
        self.target = target
        self.code = code
        super().__init__(f"MCP server {target}: {message}")


class DockerError(BackendError):
    """The Docker engine failed."""


class DockerUnavailableError(DockerError):
    """The Docker engine cannot be reached at the configured socket or host."""


class ImageNotFoundError(DockerError):
    """The configured sandbox image does not exist on the engine."""


class ContainerDiedError(DockerError):
    """The session's container stopped unexpectedly.

    Attributes:
        oom_killed: True when the kernel's OOM killer stopped it.
        exit_code: The container's exit code when known.
    """

    def __init__(self, message: str, *, oom_killed: bool = False, exit_code: int | None = None):
        self.oom_killed = oom_killed
        self.exit_code = exit_code
        super().__init__(message)


# --- model ------------------------------------------------------------------


class ModelError(ConjureError):
    """The model (the api callback) failed.

    Its message never shows a string shaped like an Anthropic key
    (``sk-ant-...``): it is replaced by ``[REDACTED]`` when the error is built.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_key_shapes(a) if isinstance(a, str) else a for a in args))


class ModelResponseError(ModelError):
    """The model returned a response that cannot be used (garbage, wrong shape)."""


class APIError(ModelError):
    """An HTTP API call failed.

    Attributes:
        message: Human-readable description (never contains the API key).
        request_id: The ``request-id`` the API reported, when any.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.message = redact_key_shapes(message)
        self.request_id = request_id
        suffix = f" (request_id={request_id})" if request_id else ""
        super().__init__(f"{message}{suffix}")


class APIConnectionError(APIError):
    """No response was received (connection refused or reset, protocol error)."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIStatusError(APIError):
    """The API answered with an error status, or sent an ``error`` event mid-stream.

    Attributes:
        status_code: The HTTP status (200 for a mid-stream error event).
        error_type: The API's ``error.type`` (e.g. ``rate_limit_error``).
        headers: The response headers (lower-cased names; secrets redacted).
    """

    status: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.headers = {
            name: REDACTED if name.lower() in _AUTH_HEADERS else redact_key_shapes(value)
            for name, value in (headers or {}).items()
        }
        kind = f" {error_type}" if error_type else ""
        super().__init__(f"HTTP {status_code}{kind}: {message}", request_id=request_id)
        self.message = redact_key_shapes(message)


class BadRequestError(APIStatusError):
    """400 ``invalid_request_error``."""

    status = 400


class AuthenticationError(APIStatusError):
    """401 ``authentication_error``."""

    status = 401


class PermissionDeniedError(APIStatusError):
    """403 ``permission_error``."""

    status = 403


class NotFoundError(APIStatusError):
    """404 ``not_found_error``."""

    status = 404


class ConflictError(APIStatusError):
    """409 ``conflict_error``."""

    status = 409


class RequestTooLargeError(APIStatusError):
    """413 ``request_too_large``."""

    status = 413


class RateLimitError(APIStatusError):
    """429 ``rate_limit_error``."""

    status = 429


class InternalServerError(APIStatusError):
    """5xx ``api_error``."""

    status = 500


class OverloadedError(APIStatusError):
    """529 ``overloaded_error``."""

    status = 529


_BY_STATUS: dict[int, type[APIStatusError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        RequestTooLargeError,
        RateLimitError,
        OverloadedError,
    )
    if cls.status is not None
}
_BY_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "conflict_error": ConflictError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "overloaded_error": OverloadedError,
    "api_error": InternalServerError,
}


def status_error_class(status_code: int, error_type: str | None = None) -> type[APIStatusError]:
    """Return the exception class for an HTTP status (or a mid-stream error type)."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return InternalServerError
    if error_type and error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    return APIStatusError
