"""The session: drives the turn engine with I/O — backends, hooks, streaming, telemetry.

The conversation's rules live in :mod:`conjure_async._engine`; running tool
calls in :mod:`conjure_async._tool_execution`. A session owns what needs
I/O or a clock: its task group and backends (opened and closed with it), the
model calls, the per-call timeouts, the events a stream yields, spans and
logs. See ``docs/adr/0001-session-task-group-and-turns.md`` and
``docs/adr/0007-turn-engine.md``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self

import anyio
from anyio.abc import TaskGroup
from typing_extensions import TypeVar

from conjure_async import _meter
from conjure_async._conversation import run_chat
from conjure_async._download import session_download
from conjure_async._engine import (
    Action,
    Continue,
    Finished,
    RunTools,
    SendRequest,
    ToolSpec,
    TurnEngine,
)
from conjure_async._event_stream import close_elsewhere, event_stream
from conjure_async._exceptions import MaxIterationsError, SessionStateError
from conjure_async._logging import Logger, get_logger
from conjure_async._model_call import NO_SPAN, ModelCaller, overrides, tool_wire
from conjure_async._names import check_skill_names, tool_routes
from conjure_async._per_session import new_id, new_lock, new_task_group
from conjure_async._persist import bind, dump_session, load_session
from conjure_async._rerouting import check_opened
from conjure_async._state import parse_state
from conjure_async._stream import EventChannel
from conjure_async._telemetry import provider_name, session_telemetry
from conjure_async._tool_execution import (
    AfterToolCall,
    BeforeToolCall,
    Deadlines,
    Deny,
    Emit,
    Rewrite,
    ToolRunner,
)
from conjure_async.backends._base import Backend, BackendContext
from conjure_async.events import (
    CreatedFile,
    ErrorEvent,
    Event,
    Paused,
    PendingCall,
    Reply,
    TurnFinished,
)
from conjure_async.messages import Message, Usage
from conjure_async.models._base import ApiCallback
from conjure_async.skills import available_skills_block

if TYPE_CHECKING:
    from conjure_async.store import SessionStore

__all__ = [
    "AfterToolCall",
    "BeforeToolCall",
    "Deny",
    "Rewrite",
    "Session",
]

DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=None)

DEFAULT_MODEL = "claude-sonnet-5-5"


class SessionState(enum.Enum):
    """A session's lifecycle: each state is entered once, in this order."""

    NEW = "new"
    """Created; ``async with`` opens it."""
    OPENING = "opening"
    """Opening its backends."""
    OPEN = "open"
    """Ready: ``chat``, ``stream`` and ``download`` work."""
    CLOSING = "closing"
    """Cancelling its background work and closing its backends."""
    CLOSED = "closed"
    """Done; it cannot be opened again."""


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Session(Generic[DepsT]):
    """A conversation with Claude that can use skills on one or more backends.

    Use it as an async context manager; it owns a task group for its lifetime
    and closes every backend (processes, containers, work dirs) on exit, also
    after an error or cancellation. Open and close it in the same task::

        async with Session(LocalBackend(skills), model=model) as session:
            reply = await session.chat("Analyze app.log")
            async for event in session.stream("Now summarize"):
                ...

    Chats on one session run one at a time (a second ``chat`` waits for the
    first). The history persists across chats; :meth:`reset` clears it.

    Args:
        backend: One backend or several; tools are routed by name.
        model: The api callback: any ``async (MessagesRequest) -> MessagesResponse``.
        model_name: The ``model`` sent in requests (default: the callback's
            ``model_name`` attribute, else ``claude-sonnet-5-5``).
        max_tokens: ``max_tokens`` of each request.
        system: Text placed before the skills block in the system prompt.
        max_iterations: Model calls allowed per chat before
            :class:`MaxIterationsError`.
        max_pause_continuations: ``pause_turn`` continuations per chat; past
            it the turn ends with ``stop_reason="pause_turn"``.
        tool_timeout: Seconds one tool call may run.
        max_concurrent_tools: Tool calls running at once.
        before_tool_call: Hook that may approve, deny or rewrite a call.
        after_tool_call: Hook that may replace a result.
        deps: The application's own objects, passed to tools as ``ctx.deps``.
        session_id: Id for logs, spans and containers (default: random).
        tracer_provider: OpenTelemetry tracer provider (default: the global one).
        meter_provider: OpenTelemetry meter provider (default: the global one).
        capture_content: Put the conversation on spans (redacted of API keys):
            messages, system prompt and tool definitions on each ``chat``
            span, tool arguments and results on ``execute_tool`` spans.
        skills_instructions: Include usage instructions with the skills block.
        store: Saves the conversation after every tool result and turn; opening
            loads it (see ``docs/conversations.md``).
        conversation_id: The conversation's id in ``store`` (required with it).
        require_approval: Tool names whose calls wait for a person's decision.
        prompt_caching: Cache breakpoints (``"auto"``: the model's default; ``None``: off).
        compaction: Server-side compaction of long conversations.
        context_editing: Server-side clearing of old tool results and thinking.
        usage_limits: Limits for the whole session.
        chat_usage_limits: Limits for each chat.
        prices: Prices for cost estimates (default ``conjure_async.pricing.PRICES``).
    """

    def __init__(
        self,
        backend: Backend | Sequence[Backend] = (),
        *,
        model: ApiCallback,
        model_name: str | None = None,
        max_tokens: int = 4096,
        system: str | None = None,
        max_iterations: int = 25,
        max_pause_continuations: int = 10,
        tool_timeout: float = 120.0,
        max_concurrent_tools: int = 8,
        before_tool_call: BeforeToolCall | None = None,
        after_tool_call: AfterToolCall | None = None,
        deps: DepsT = None,  # type: ignore[assignment] # DepsT defaults to None
        session_id: str | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: bool = False,
        skills_instructions: bool = True,
        store: SessionStore | None = None,
        conversation_id: str | None = None,
        require_approval: Collection[str] = (),
        prompt_caching: _meter.CachingOption = _meter.AUTO,
        compaction: _meter.Compaction | None = None,
        context_editing: _meter.ContextEditing | None = None,
        usage_limits: _meter.UsageLimits | None = None,
        chat_usage_limits: _meter.UsageLimits | None = None,
        prices: _meter.Prices | None = None,
    ) -> None:
        self.backends: tuple[Backend, ...] = (
            (backend,) if isinstance(backend, Backend) else tuple(backend)
        )
        if max_iterations < 1 or max_tokens < 1 or tool_timeout <= 0:
            raise ValueError("max_iterations, max_tokens and tool_timeout must be positive")
        self.model = model
        self.model_name: str = model_name or getattr(model, "model_name", None) or DEFAULT_MODEL
        self.max_tokens = max_tokens
        self.system_prefix = system
        self.max_iterations = max_iterations
        self.max_pause_continuations = max_pause_continuations
        self.tool_timeout = tool_timeout
        self.before_tool_call = before_tool_call
        self.after_tool_call = after_tool_call
        self.deps: DepsT = deps
        self.session_id = session_id or new_id()
        self.skills_instructions = skills_instructions
        self._telemetry = session_telemetry(tracer_provider, meter_provider, capture_content)
        # Uncontended (the usual case), acquiring does not yield to the event loop.
        self._lock = new_lock()
        self._log: Logger = get_logger(session_id=self.session_id)
        self._tg: TaskGroup | None = None
        self._state = SessionState.NEW
        self._binding = bind(store, conversation_id)
        self._opener: asyncio.Task[Any] | None = None
        routes = self._routes = tool_routes(self.backends)
        check_skill_names(self.backends)
        self._engine = TurnEngine(
            [ToolSpec(name, b.kind, d.input_schema) for name, (b, d) in routes.items()],
            max_iterations=max_iterations,
            max_pause_continuations=max_pause_continuations,
            require_approval=require_approval,
        )
        self._deadlines = Deadlines()
        self._models = ModelCaller(
            self._engine,
            self.backends,
            [tool_wire(d) for _, d in routes.values()],
            telemetry=self._telemetry,
        )
        m = _meter.Meter(
            prompt_caching, compaction, context_editing, usage_limits, chat_usage_limits, prices
        )
        self._models.meter = self._meter = m
        self._tools = ToolRunner(
            self._engine,
            {name: b for name, (b, _) in routes.items()},
            logger=self._log,
            telemetry=self._telemetry,
            deadlines=self._deadlines,
            max_concurrent=max_concurrent_tools,
            descriptions={name: d.description for name, (_, d) in routes.items()},
        )

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not SessionState.NEW:
            raise SessionStateError(f"a session can be opened once (it is {self._state.value})")
        self._state = SessionState.OPENING
        tg = new_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._deadlines.open()
        self._opener = asyncio.current_task()
        opened: list[Backend] = []
        try:
            if self._binding is not None:  # backend state loads before the backends open
                await self._binding.load(self)
            for backend in self.backends:
                await backend.open(
                    BackendContext(
                        session_id=self.session_id,
                        task_group=tg,
                        logger=self._log.bind(backend=backend.kind),
                    )
                )
                opened.append(backend)
            check_opened(self)  # skill names again; tools re-routed if a backend learned new ones
            self._models.system = self._build_system_prompt()
        except BaseException:
            self._deadlines.close()
            await self._close_backends(opened)
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            self._state = SessionState.CLOSED
            raise
        self._state = SessionState.OPEN
        self._log.debug("session.opened", backends=[b.kind for b in self.backends])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if asyncio.current_task() is not self._opener:
            await close_elsewhere(self)  # frees what it can, then raises SessionStateError
        self._state = SessionState.CLOSING
        assert self._tg is not None
        busy = _may_have_tasks(self._tg)
        if busy:
            self._tg.cancel_scope.cancel()
        try:
            # Only background work runs in the task group (each chat catches its
            # own errors), so the body's exception is not fed into it: it
            # propagates unchanged instead of wrapped in an ExceptionGroup.
            if busy:
                await self._tg.__aexit__(None, None, None)
            else:  # nothing ran in it: its scope closes without the checkpoint anyio adds
                self._tg.cancel_scope.__exit__(None, None, None)
        finally:
            self._deadlines.close()
            await self._close_backends(self.backends)
            self._state = SessionState.CLOSED
            self._log.debug("session.closed")
        return None

    async def _close_backends(self, backends: Sequence[Backend]) -> None:
        # Backends that keep the base class's empty aclose have nothing to close.
        backends = [b for b in backends if overrides(b, "aclose")]
        if not backends:
            return
        with anyio.CancelScope(shield=True):
            for backend in reversed(backends):
                try:
                    with anyio.fail_after(30):
                        await backend.aclose()
                except Exception as exc:  # noqa: BLE001 - closing must go on for the others
                    self._log.error("backend.close_failed", backend=backend.kind, error=repr(exc))

    def _build_system_prompt(self) -> str | None:
        parts: list[str] = []
        if self.system_prefix:
            parts.append(self.system_prefix)
        listings = [listing for b in self.backends for listing in b.skill_listings()]
        if listings:
            parts.append(available_skills_block(listings, instructions=self.skills_instructions))
        parts.extend(note for b in self.backends if (note := b.prompt_notes()))
        return "\n\n".join(parts) or None

    def _ensure_open(self) -> TaskGroup:
        if self._state is not SessionState.OPEN or self._tg is None:
            raise SessionStateError(
                f"the session is {self._state.value}; use it inside 'async with Session(...)'"
            )
        return self._tg

    # -- public state ------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """A copy of the conversation history."""
        return list(self._engine.history)

    @property
    def usage(self) -> Usage:
        """Token usage summed over every model call of this session."""
        return self._engine.usage

    @property
    def files(self) -> list[CreatedFile]:
        """Every file created by tools in this session, tagged with its backend."""
        return self._engine.files

    cost, context_edits, count_tokens, usage_limits, chat_usage_limits = _meter.MEMBERS

    @property
    def pending(self) -> list[PendingCall]:
        """Tool calls waiting for a decision (``chat(approvals=...)``), in call order."""
        return self._engine.pending

    @property
    def system_prompt(self) -> str | None:
        """The system prompt sent with each request (after the session opened)."""
        return self._models.system

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The client tool definitions sent to the model."""
        return list(self._models.tool_dicts)

    download = session_download

    async def refresh(self) -> None:
        """Load what another writer saved of this conversation since (each chat does it too)."""
        if self._binding is not None:
            async with self._lock:
                await self._binding.refresh(self)

    def reset(self) -> None:
        """Forget the conversation history (usage totals and files stay); not during a chat."""
        self._engine.reset()

    def dump_state(self) -> dict[str, Any]:
        """Return the session's state as JSON-able data.

        Covers the history, usage, created files and each backend's own state
        (e.g. a hosted container id); :meth:`restore` resumes from it, in this
        process or another.
        """
        return dump_session(self)

    @classmethod
    def restore(
        cls,
        state: dict[str, Any] | str,
        *,
        backend: Backend | Sequence[Backend] = (),
        model: ApiCallback,
        **options: Any,
    ) -> Session[Any]:
        """Create a session from :meth:`dump_state` output (a dict or its JSON).

        The backends must be of the same kinds, in the same order, as when the
        state was dumped. Raises :class:`SessionStateError` when they differ or
        the state is malformed. A tool call saved without its result is
        answered as cancelled.
        """
        parsed = parse_state(state)
        options.setdefault("session_id", parsed.session_id)
        options.setdefault("model_name", parsed.model_name)
        session: Session[Any] = cls(backend, model=model, **options)
        load_session(session, parsed)
        return session

    # -- chatting ----------------------------------------------------------

    async def chat(
        self,
        message: str | list[dict[str, Any]] | None = None,
        *,
        approvals: Mapping[str, Any] | None = None,
        output_type: type[OutputT] | None = None,
        output_retries: int = 2,
    ) -> Reply[OutputT]:
        """Send ``message`` and run the turn to its end; return the reply.

        The same turn as :meth:`stream`, building no events (nobody reads
        them; it runs in the calling task, so cancelling the caller cancels
        the turn). Raises what the stream raises: :class:`MaxIterationsError`,
        :class:`ModelError` subclasses, :class:`BackendError` subclasses.

        Args:
            message: The user's text or content blocks.
            approvals: Instead of a message: ``Approve()``, ``Deny(reason)`` or
                ``Approve(input=...)`` for each of ``reply.pending``; the turn goes on.
            output_type: Validate the answer as this type into ``reply.output``.
            output_retries: Invalid answers sent back before :class:`OutputValidationError`.
        """
        self._ensure_open()
        async with self._lock:
            try:
                return await run_chat(
                    self,
                    message,
                    None,
                    approvals=approvals,
                    output_type=output_type,
                    output_retries=output_retries,
                )
            except Exception as exc:
                error = _unwrap(exc)
                self._log.error("chat.failed", error_type=type(error).__name__, error=str(error))
                if error is exc:
                    raise
                raise error from None

    @event_stream
    async def stream(
        self,
        message: str | list[dict[str, Any]] | None = None,
        *,
        approvals: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        """Send ``message`` (or ``approvals``, as in :meth:`chat`); yield the turn's events.

        The turn runs in the session's task group; this iterator reads its
        events. Cancelling the iteration (e.g. a client disconnect) cancels the
        turn, kills its running tools and leaves a consistent history; so does
        closing it early: ``async with session.stream(text) as events:``
        closes it at the block's end. On failure an :class:`ErrorEvent` is
        yielded, then the exception is raised.
        """
        tg = self._ensure_open()
        channel: EventChannel[Event | _Failure] = EventChannel()
        scope = anyio.CancelScope()
        done = anyio.Event()

        async def runner() -> None:
            try:
                with scope:
                    async with self._lock:
                        try:
                            await run_chat(self, message, channel.put, approvals=approvals)
                        except Exception as exc:  # noqa: BLE001 - delivered to the reader
                            await self._deliver_failure(channel, exc)
            finally:
                channel.close()
                done.set()

        tg.start_soon(runner, name=f"conjure chat {self.session_id}")
        try:
            while True:
                items = channel.take_all()
                if not items:
                    if channel.closed:
                        break
                    await channel.wait_readable()
                    continue
                for item in items:
                    if isinstance(item, _Failure):
                        raise item.error
                    yield item
        finally:
            if not done.is_set():
                scope.cancel()
                with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                    await done.wait()

    async def _deliver_failure(
        self, channel: EventChannel[Event | _Failure], exc: Exception
    ) -> None:
        error = _unwrap(exc)
        self._log.error("chat.failed", error_type=type(error).__name__, error=str(error))
        await channel.put(ErrorEvent(error_type=type(error).__name__, message=str(error)))
        await channel.put(_Failure(error))

    async def _run_turn(
        self, message: str | list[dict[str, Any]], emit: Emit | None, start: Action | None
    ) -> Reply:
        """Drive the engine through one turn (from ``start``, or the message); cancel it early."""
        engine = self._engine
        engine.max_iterations = self.max_iterations
        engine.max_pause_continuations = self.max_pause_continuations
        # Decided once per turn: whether spans go anywhere (no provider: no spans).
        tracing = self._telemetry.active
        action: Action = engine.begin(message) if start is None else start
        calls = self._tools.settings(self, emit, tracing=tracing)
        try:
            with (
                self._telemetry.agent_span(
                    self.session_id, self.model_name, provider_name(self.model)
                )
                if tracing
                else NO_SPAN
            ) as span:
                while True:
                    if isinstance(action, SendRequest):
                        response = await self._models.ask(self, emit, tracing=tracing)
                        action = engine.on_response(response)
                        for call_id in engine.dropped_ids:
                            self._log.warning("model.duplicate_tool_use_id", call_id=call_id)
                    elif isinstance(action, RunTools):
                        await self._tools.run(action, calls)
                        action = engine.next_request()
                    elif isinstance(action, Continue):
                        if emit is not None:
                            await emit(Paused._fast(kind="paused", count=action.pauses))
                        action = engine.next_request()
                    elif isinstance(action, Finished):
                        break
                    else:
                        raise MaxIterationsError(action.limit)
                reply = self._meter.finish_chat(action.reply)
                if tracing:
                    self._telemetry.record_usage(span, reply.usage, [reply.stop_reason or ""])
                self._log.debug(
                    "chat.finished", stop_reason=reply.stop_reason, iterations=reply.iterations
                )
                if emit is not None:
                    await emit(TurnFinished._fast(kind="turn_finished", reply=reply))
        finally:
            engine.cancel()  # a no-op after the turn's end; otherwise answers what is open
        return reply


def _may_have_tasks(tg: TaskGroup) -> bool:
    """Whether background work may run in the task group (so closing cancels and awaits it).

    A cancel costs a task ``repr`` (anyio writes the reason), and exiting a group
    runs a checkpoint even when it has no task: an event-loop round trip per
    session. An idle session skips both and exits the group's cancel scope
    directly. Reads anyio's asyncio task set and failures (a task that failed
    and ended leaves its error there); answers "yes" when it cannot tell.
    """
    tasks, failures = getattr(tg, "_tasks", None), getattr(tg, "_exceptions", None)
    if not isinstance(tasks, set) or not isinstance(failures, list):
        return True
    return bool(tasks or failures or tg.cancel_scope.cancel_called)


def _unwrap(exc: BaseException) -> BaseException:
    """The single error inside (nested) one-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
