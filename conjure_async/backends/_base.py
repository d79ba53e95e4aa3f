"""The one seam every execution backend implements.

A backend decides *where* a tool call runs. The session owns the conversation;
the backend only:

* tells the session which skills it offers and where it sees them
  (:meth:`Backend.skill_listings`) and which client tools it serves
  (:meth:`Backend.tools`);
* may add to each model request (:meth:`Backend.prepare_request`; the hosted
  backend adds the code execution tool, ``container`` and beta headers) and
  read each content block and response (:meth:`Backend.handle_block`,
  :meth:`Backend.handle_response`; the hosted backend turns server tool blocks
  into events and remembers the container id);
* runs a client tool call as an **async generator**
  (:meth:`Backend.run_tool`) yielding :class:`ToolChunk` output while it runs
  and exactly one :class:`ToolResult` last.

A backend instance belongs to one session at a time: the session calls
:meth:`Backend.open` when it opens and :meth:`Backend.aclose` when it closes
(also on error and cancellation). Share expensive things (a Docker warm pool,
an HTTP client) by passing the same object to several backend instances.

Adding a fifth backend means one new module with one subclass of
:class:`Backend`, and one line in ``conjure_async.backends``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from conjure_async._exceptions import BackendError
from conjure_async.events import CreatedFile, EgressDecision
from conjure_async.messages import (
    ContentBlock,
    MessagesRequest,
    MessagesResponse,
    ToolDefinition,
)

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from conjure_async._logging import Logger
    from conjure_async.events import Event
    from conjure_async.skills import SkillListing

__all__ = [
    "Backend",
    "BackendContext",
    "ToolCall",
    "ToolChunk",
    "ToolContext",
    "ToolEvent",
    "ToolResult",
]

DepsT = TypeVar("DepsT")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One client tool call the model made."""

    id: str
    """The ``tool_use`` id; the result carries it back."""
    name: str
    """The tool name."""
    input: dict[str, Any]
    """The arguments (already validated against the tool's schema)."""


@dataclass(frozen=True, slots=True)
class ToolChunk:
    """A piece of output a running tool produced."""

    text: str
    stream: Literal["stdout", "stderr"] = "stdout"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of a tool call: what the model receives.

    ``output`` is the text (or content blocks) sent back as the ``tool_result``;
    ``is_error`` marks a failed call, which is information for the model, not an
    exception. ``error_type`` names the class of a failure when one is known
    (the type name of the exception a native tool raised); telemetry records
    it as ``error.type``.
    """

    output: str | list[dict[str, Any]]
    is_error: bool = False
    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    timed_out: bool = False
    files: tuple[CreatedFile, ...] = ()
    error_type: str | None = None

    @property
    def text(self) -> str:
        """The output as text (text blocks joined when it is a block list)."""
        if isinstance(self.output, str):
            return self.output
        return "\n".join(str(b.get("text", "")) for b in self.output if b.get("type") == "text")


ToolEvent = ToolChunk | ToolResult | EgressDecision
"""What :meth:`Backend.run_tool` yields (an :class:`EgressDecision` goes to the event stream)."""


@dataclass(frozen=True, slots=True)
class ToolContext(Generic[DepsT]):
    """What a tool call knows about its surroundings.

    Native skills receive it as their ``ctx`` argument; other backends use it
    for logging.
    """

    session_id: str
    """The session's id."""
    call_id: str
    """The tool call's id."""
    tool_name: str
    """The tool name as the model called it."""
    logger: Logger
    """A logger bound to ``session_id`` and ``call_id``."""
    deps: DepsT
    """The application's own dependencies, as passed to ``Session(deps=...)``."""
    idempotency_key: str | None = None
    """Stable across retries of this call (durable sessions: workflow id + ``tool_use`` id).

    ``None`` in an in-process session. A backend may record a finished call's
    result under it and return the record when the call is retried.
    """


@dataclass(slots=True)
class BackendContext:
    """What a backend gets when its session opens."""

    session_id: str
    """The session's id (also used in container labels and work dir names)."""
    task_group: TaskGroup
    """The session's task group, for background work living as long as the session."""
    logger: Logger
    """A logger bound to the session."""
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):  # noqa: B024 - every hook has a default; run_tool raises
    """Base class of the execution backends.

    Subclasses set :attr:`kind` and override what they need; every method has
    a harmless default except :meth:`run_tool`, which a backend serving client
    tools must implement.
    """

    kind: ClassVar[str] = "backend"
    """Short name used in events, spans and state (``local``, ``docker``...)."""

    async def open(self, ctx: BackendContext) -> None:  # noqa: B027 - optional hook
        """Acquire per-session resources; called once when the session opens.

        Raises:
            BackendError: the backend's infrastructure cannot be used.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything :meth:`open` or tool calls acquired.

        Called when the session closes, also after an error or cancellation
        (inside a shielded scope); must not raise for resources already gone.
        """

    def skill_listings(self) -> Sequence[SkillListing]:
        """The skills this backend offers, with the location its tools see."""
        return ()

    def tools(self) -> Sequence[ToolDefinition]:
        """The client tools this backend serves (names must be unique per session)."""
        return ()

    def prompt_notes(self) -> str | None:
        """Extra text for the system prompt (e.g. the working directory), if any."""
        return None

    def prepare_request(self, request: MessagesRequest) -> MessagesRequest:
        """Return the request to send, with what this backend adds to it."""
        return request

    def handle_block(self, block: ContentBlock) -> Sequence[Event]:
        """Read one content block as soon as it is complete; return events for it.

        Called for every block of every response, in order (live while the
        model streams), before :meth:`handle_response`. The hosted backend
        turns server tool blocks into tool and file events here, so they
        stream in their place between the text deltas.
        """
        del block
        return ()

    def handle_response(self, response: MessagesResponse) -> Sequence[Event]:
        """Read a whole model response after its blocks; return events, if any."""
        del response
        return ()

    async def after_response(self) -> Sequence[Event]:
        """Return events that need I/O, after each response (e.g. file names looked up).

        Called after :meth:`handle_response`; must not raise for a lookup that
        fails (report what is known instead).
        """
        return ()

    def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run one client tool call.

        An async generator: yields :class:`ToolChunk` while the tool runs and
        exactly one :class:`ToolResult` last; a sandbox with an egress policy
        also yields the :class:`EgressDecision` events its proxy made
        meanwhile (they go to the session's event stream). The session consumes it inside a
        cancel scope with a deadline (``Session(tool_timeout=...)``) and closes
        it (``aclose``) when it is cancelled or the deadline passes; the
        generator must then stop the work it started (kill processes, execs)
        in ``finally``. It must not hold a task
        group or cancel scope across a ``yield``.

        A failing tool yields a ``ToolResult(is_error=True)``; only
        infrastructure failures raise (:class:`BackendError`).
        """
        raise NotImplementedError(f"{type(self).__name__} serves no client tools ({call.name})")

    async def download(
        self,
        file: CreatedFile,
        directory: Path,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Copy a file this backend reported into ``directory``; return its path.

        Called by :meth:`Session.download <conjure_async.Session.download>` for
        files whose ``source`` is this backend's :attr:`kind`. The copy keeps
        the file's name made safe (never a path outside ``directory``), is
        written under a temporary name and renamed when complete (a failed
        copy leaves nothing), and replaces an existing file only with
        ``overwrite``.

        Raises:
            FileExistsError: The target exists and ``overwrite`` is false.
            FileNotFoundError: The file is gone (or was never readable).
            BackendError: This backend cannot hand out files.
        """
        del directory, overwrite
        raise BackendError(f"{type(self).__name__} cannot download files ({file.name})")

    def dump_state(self) -> dict[str, Any]:
        """JSON-able state to carry into a restored session (e.g. a container id)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`dump_state` returned (before :meth:`open`)."""
        del state
