"""Running the tool calls the turn engine hands out: hooks, timeouts, spans, events.

The engine decides *which* calls run and what the model is told about calls
that do not (see :mod:`conjure_async._engine`); this module does the I/O of
running them. One call is a few small steps, each returning one outcome::

    approve  -> the call to run (maybe rewritten), or a result already decided
    execute  -> the backend's result, or a timed-out result with the output's tail
    complete -> the after_tool_call hook, the span, events, the engine told

Per-call timeouts share one timer per session (:class:`Deadlines`) instead of
one ``CancelScope(deadline=...)`` per call: arming and disarming a timer per
call churned the event loop's timer heap (measured 14-31 µs a call, see
``docs/adr/0007-turn-engine.md``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from conjure_async._decisions import Defer
from conjure_async._engine import NO_BACKEND, RunTools, TurnEngine
from conjure_async._exceptions import BackendError
from conjure_async._logging import CallLogger, Logger
from conjure_async.backends._base import (
    Backend,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolResult,
)
from conjure_async.events import (
    CreatedFile,
    Event,
    FileCreated,
    ToolFinished,
    ToolOutput,
    ToolStarted,
)

# Events built per call, from a dict literal (no keyword packing, no validation).
from conjure_async.messages import _fast_construct as _build

if TYPE_CHECKING:
    from conjure_async._telemetry import Telemetry

__all__ = [
    "TIMED_OUT",
    "AfterToolCall",
    "BeforeToolCall",
    "CallSettings",
    "Deadlines",
    "Deny",
    "Emit",
    "Rewrite",
    "ToolOptions",
    "ToolRunner",
]

TIMED_OUT: Final = "[timed out after {seconds}; the tool was stopped]"
"""Appended to the output's tail in the result of a call that ran past ``tool_timeout``."""
TIMEOUT_TAIL: Final = 4000
"""Characters of a timed-out call's output the model still receives."""

Emit = Callable[[Event], Awaitable[None]]
"""Where a streaming turn sends its events (``None`` in ``chat()``: nobody reads them)."""


@dataclass(frozen=True, slots=True)
class Deny:
    """Returned by a ``before_tool_call`` hook: do not run; tell the model why."""

    message: str


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Returned by a ``before_tool_call`` hook: run with this input instead."""

    input: dict[str, Any]


BeforeToolCall = Callable[[ToolCall, ToolContext[Any]], Awaitable[Deny | Rewrite | Defer | None]]
"""``async (call, ctx) -> None | Deny | Rewrite | Defer``; ``None`` approves the call."""

DEFERRED: Final = ToolResult(output="deferred for approval", is_error=True)
"""The outcome of a call a hook deferred (it waits for a person; no result yet)."""

AfterToolCall = Callable[[ToolCall, ToolResult], Awaitable[ToolResult | None]]
"""``async (call, result) -> None | ToolResult``; a result replaces the original."""


class Deadlines:
    """Stops tool calls that outlive their timeout, with one event-loop timer per session.

    Each running call registers its cancel scope and deadline (on the
    loop's clock); one timer is armed for the earliest deadline and, when it
    fires, cancels what expired and re-arms for what still runs. Calls start
    later than the ones before them and share one timeout, so a new call
    almost never moves the armed deadline: the timer is armed about once per
    timeout, not once per call, and a call that finishes only removes a dict
    entry. A timer callback rather than a watcher task: nothing to start,
    cancel and await per session (the library runs on asyncio: Local and
    Docker need it). The session opens it with its loop and closes it.
    """

    __slots__ = ("_handle", "_loop", "_running", "_when")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[anyio.CancelScope, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._when = math.inf

    def open(self) -> None:
        """Bind to the running event loop (the session's)."""
        self._loop = asyncio.get_running_loop()

    def close(self) -> None:
        """Disarm the timer (the session is closing; its calls are cancelled anyway)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._running.clear()
        self._loop = None

    def now(self) -> float:
        """The loop's clock, the one deadlines are on."""
        if self._loop is None:
            raise RuntimeError("Deadlines is not open (the session is not open)")
        return self._loop.time()

    def start(self, scope: anyio.CancelScope, seconds: float) -> None:
        """Cancel ``scope`` ``seconds`` from now unless :meth:`remove` comes first."""
        if self._loop is None:
            raise RuntimeError("Deadlines is not open (the session is not open)")
        self.add(scope, self._loop.time() + seconds)

    def add(self, scope: anyio.CancelScope, deadline: float) -> None:
        """Cancel ``scope`` at ``deadline`` (:meth:`now`'s clock) unless removed before."""
        self._running[scope] = deadline
        if deadline < self._when:
            self._arm(deadline)

    def remove(self, scope: anyio.CancelScope) -> None:
        """The call of ``scope`` is over (finished, failed or cancelled)."""
        self._running.pop(scope, None)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        assert self._loop is not None
        self._handle = self._loop.call_at(when, self._fire)
        self._when = when

    def _fire(self) -> None:
        self._handle = None
        self._when = math.inf
        if self._loop is None:
            return
        now = self._loop.time()
        expired = [scope for scope, at in self._running.items() if at <= now]
        for scope in expired:
            del self._running[scope]
            scope.cancel()
        if self._running:
            self._arm(min(self._running.values()))


class ToolOptions(Protocol):
    """What a :class:`ToolRunner` reads from its session at each call (the user may change it)."""

    session_id: str
    deps: Any
    tool_timeout: float
    before_tool_call: BeforeToolCall | None
    after_tool_call: AfterToolCall | None


class ToolRunner:
    """Runs one :class:`RunTools` batch for a session and reports to its engine.

    Args:
        engine: The session's turn engine (told each result).
        routes: The backend serving each tool name.
        logger: The session's logger.
        telemetry: The session's span factory.
        deadlines: The session's per-call timer.
        max_concurrent: Calls running at once.
        descriptions: Each tool's description (for ``gen_ai.tool.description``).
    """

    __slots__ = (
        "_deadlines",
        "_descriptions",
        "_kinds",
        "_limiter",
        "_log",
        "_max_concurrent",
        "_routes",
        "_scope_type",
        "_telemetry",
        "engine",
    )

    def __init__(
        self,
        engine: TurnEngine,
        routes: Mapping[str, Backend],
        *,
        logger: Logger,
        telemetry: Telemetry,
        deadlines: Deadlines,
        max_concurrent: int,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        """The engine told each result (a restored session replaces it)."""
        self._routes = dict(routes)
        self._kinds = {name: backend.kind for name, backend in routes.items()}
        self._descriptions = dict(descriptions or {})
        self._log = logger
        self._telemetry = telemetry
        self._deadlines = deadlines
        self._limiter: anyio.CapacityLimiter | None = (
            None  # made for the first batch over the limit
        )
        self._max_concurrent = max_concurrent
        self._scope_type: type[anyio.CancelScope] | None = None

    def settings(self, options: ToolOptions, emit: Emit | None, *, tracing: bool) -> CallSettings:
        """What every call of one turn shares (made once per turn)."""
        return CallSettings(options, emit, tracing=tracing)

    def run(self, batch: RunTools, how: CallSettings) -> Awaitable[None]:
        """Run every call of ``batch`` (concurrently, bounded); each result goes to the engine.

        Returns the coroutine to await: a batch of one call is that call's own
        coroutine (it runs in the turn's task, no task started, no frame
        between). ``how.options`` (the session: its id, deps, timeout and
        hooks) is read at each call, not kept: the runner holds no reference
        to its session. Cancellation propagates; the results already reported
        stay with the engine, which answers the others when the turn is
        cancelled.
        """
        calls, refusals = batch.calls, batch.refusals
        how.approved = batch.approved  # approved by a person: no hook asks again
        # Chats on one session run one at a time, so a batch no larger than
        # the limit can never wait for it: the limiter is skipped.
        limited = len(calls) > self._max_concurrent
        if len(calls) == 1 and not limited:
            call = calls[0]
            return self._run_one(call, refusals.get(call.id) if refusals else None, how)
        return self._run_many(batch, how, limited=limited)

    async def _run_many(self, batch: RunTools, how: CallSettings, *, limited: bool) -> None:
        run = self._run_limited if limited else self._run_one
        if limited and self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_concurrent)
        async with anyio.create_task_group() as tg:
            for call in batch.calls:
                tg.start_soon(run, call, batch.refusals.get(call.id), how)

    async def _run_limited(self, call: ToolCall, refusal: str | None, how: CallSettings) -> None:
        assert self._limiter is not None  # made by _run_many
        async with self._limiter:
            await self._run_one(call, refusal, how)

    async def _run_one(self, call: ToolCall, refusal: str | None, how: CallSettings) -> None:
        options, emit = how.options, how.emit
        ctx = _context(
            options.session_id,
            call.id,
            call.name,
            CallLogger(self._log, call.id, call.name),
            options.deps,
        )
        before = None if how.approved else options.before_tool_call
        if refusal is None and before is None:
            ran, decided = call, None  # the common case, without a coroutine
        else:
            ran, decided = await self._approve(call, refusal, ctx, before)
            if decided is DEFERRED:
                self.engine.defer(call.id)
                return
        backend = self._kinds.get(call.name, NO_BACKEND)
        if emit is not None:
            await emit(
                _build(
                    ToolStarted,
                    {
                        "kind": "tool_started",
                        "call_id": ran.id,
                        "name": ran.name,
                        "input": ran.input,
                        "backend": backend,
                    },
                )
            )
        timeout = options.tool_timeout
        after = options.after_tool_call
        started = time.perf_counter()
        if how.tracing:
            with self._telemetry.tool_span(
                ran.name,
                ran.id,
                backend=backend,
                description=self._descriptions.get(ran.name),
                arguments=ran.input,
            ) as span:
                result = await self._complete(ran, decided, ctx, emit, limit=timeout, hook=after)
                duration = time.perf_counter() - started
                self._telemetry.record_tool_result(
                    span,
                    name=ran.name,
                    output=result.text,
                    is_error=result.is_error,
                    exit_code=result.exit_code,
                    duration_s=duration,
                    timed_out=result.timed_out,
                    error_type="timeout" if result.timed_out else result.error_type,
                )
        elif decided is None and after is None:
            result = await self._execute(ran, ctx, emit, timeout)  # the common case
            duration = time.perf_counter() - started
        else:
            result = await self._complete(ran, decided, ctx, emit, limit=timeout, hook=after)
            duration = time.perf_counter() - started
        new_files = self.engine.on_result(
            call.id, result, input=ran.input if ran is not call else None
        )
        if how.checkpoint is not None:  # a session bound to a store saves each result
            await how.checkpoint()
        if emit is not None:
            for event in self._finished(ran, backend, result, duration, new_files):
                await emit(event)
        if how.debug:
            ctx.logger.debug(
                "tool.finished",
                is_error=result.is_error,
                exit_code=result.exit_code,
                duration_s=round(duration, 6),
            )

    async def _approve(
        self,
        call: ToolCall,
        refusal: str | None,
        ctx: ToolContext[Any],
        hook: BeforeToolCall | None,
    ) -> tuple[ToolCall, ToolResult | None]:
        """The call to run (a hook may rewrite it), and its result if it must not run."""
        if refusal is not None:
            return call, ToolResult(output=refusal, is_error=True)
        if hook is None:
            return call, None
        decision = await hook(call, ctx)
        if isinstance(decision, Deny):
            return call, ToolResult(output=decision.message, is_error=True)
        if isinstance(decision, Defer):
            return call, DEFERRED
        if isinstance(decision, Rewrite):
            call = ToolCall(id=call.id, name=call.name, input=dict(decision.input))
            problem = self.engine.check_rewrite(call.name, call.input)
            if problem is not None:
                return call, ToolResult(output=problem, is_error=True)
        return call, None

    async def _complete(
        self,
        call: ToolCall,
        decided: ToolResult | None,
        ctx: ToolContext[Any],
        emit: Emit | None,
        *,
        limit: float,
        hook: AfterToolCall | None,
    ) -> ToolResult:
        """Run the call unless it was decided, then let ``after_tool_call`` replace the result."""
        if decided is None:
            result = await self._execute(call, ctx, emit, limit)
        else:
            result = decided
        if hook is not None:
            result = await hook(call, result) or result
        return result

    async def _execute(
        self, call: ToolCall, ctx: ToolContext[Any], emit: Emit | None, limit: float
    ) -> ToolResult:
        """Consume the backend's ``run_tool`` generator, stopped after ``limit`` seconds.

        Only the session's :class:`Deadlines` cancels its scope, so a
        ``TimeoutError`` the tool itself raises is not mistaken for ours.
        """
        backend = self._routes[call.name]
        result: ToolResult | None = None
        output: _Output | None = None  # made for the first chunk (most tools send none)
        scope = (self._scope_type or self._learn_scope_type())()
        timed = limit != math.inf
        if timed:
            self._deadlines.start(scope, limit)
        try:
            with scope:
                agen = backend.run_tool(call, ctx)
                try:
                    async for item in agen:
                        if isinstance(item, ToolChunk):
                            if output is None:
                                output = _Output(call, emit)
                            await output.add(item)
                        elif isinstance(item, ToolResult):
                            result = item
                        elif emit is not None:  # an event the backend reports (EgressDecision)
                            await emit(item)
                except BaseException:
                    # Stopped early (timeout, cancellation, an error): the
                    # generator's finally blocks stop the work it started.
                    await agen.aclose()  # type: ignore[attr-defined] # run_tool is an async generator
                    raise
        finally:
            if timed:
                self._deadlines.remove(scope)
        if scope.cancelled_caught:
            partial = output.tail() if output is not None else ""
            note = TIMED_OUT.format(seconds=_fmt_seconds(limit))
            return ToolResult(
                output=f"{partial}\n{note}" if partial else note, is_error=True, timed_out=True
            )
        if result is None:
            raise BackendError(f"backend {backend.kind} yielded no result for {call.name}")
        return result

    def _learn_scope_type(self) -> type[anyio.CancelScope]:
        """The cancel scope class of the running event loop, remembered per session.

        ``anyio.CancelScope()`` looks the async library up (sniffio) and runs
        ``__init__`` twice on every call; the class it returns builds the
        same scope about three times faster. One session lives in one event
        loop, so the class never changes.
        """
        self._scope_type = type(anyio.CancelScope())
        return self._scope_type

    @staticmethod
    def _finished(
        call: ToolCall,
        backend: str,
        result: ToolResult,
        duration: float,
        files: Sequence[CreatedFile],
    ) -> list[Event]:
        """The events announcing a finished call: ``tool_finished``, then its new files."""
        events: list[Event] = [
            _build(
                ToolFinished,
                {
                    "kind": "tool_finished",
                    "call_id": call.id,
                    "name": call.name,
                    "backend": backend,
                    "output": result.text,
                    "is_error": result.is_error,
                    "exit_code": result.exit_code,
                    "stdout": result.stdout,
                    "stderr": result.stderr,
                    "timed_out": result.timed_out,
                    "duration_s": duration,
                },
            )
        ]
        if files:
            events.extend(FileCreated._fast(kind="file_created", file=created) for created in files)
        return events


_GIVEN: Final = ("session_id", "call_id", "tool_name", "logger", "deps")
_SET_CONTEXT: Final = tuple(ToolContext.__dict__[name].__set__ for name in _GIVEN)
"""The slots of the frozen :class:`ToolContext`, written directly (its ``__init__`` goes
through ``object.__setattr__`` per field: four times slower, paid per call)."""
_CONTEXT_DEFAULTS: Final = tuple(
    (ToolContext.__dict__[f.name].__set__, f.default)
    for f in dataclasses.fields(ToolContext)
    if f.name not in _GIVEN
)
"""The other fields, each set to its default (a field without a plain default: see below)."""
_FAST_CONTEXT: Final = all(
    f.name in _GIVEN or f.default is not dataclasses.MISSING
    for f in dataclasses.fields(ToolContext)
)


def _context(
    session_id: str, call_id: str, tool_name: str, logger: Logger, deps: Any
) -> ToolContext[Any]:
    """``ToolContext(session_id, call_id, tool_name, logger, deps)``, built for the hot path."""
    if not _FAST_CONTEXT:  # a field with a default factory or none: the real constructor
        return ToolContext(session_id, call_id, tool_name, logger, deps)
    ctx: ToolContext[Any] = object.__new__(ToolContext)
    set_session, set_call, set_tool, set_logger, set_deps = _SET_CONTEXT
    set_session(ctx, session_id)
    set_call(ctx, call_id)
    set_tool(ctx, tool_name)
    set_logger(ctx, logger)
    set_deps(ctx, deps)
    for set_field, default in _CONTEXT_DEFAULTS:
        set_field(ctx, default)
    return ctx


class CallSettings:
    """What every call of one turn shares: the session's options, the event sink, tracing."""

    __slots__ = ("approved", "checkpoint", "debug", "emit", "options", "tracing")

    def __init__(self, options: ToolOptions, emit: Emit | None, *, tracing: bool) -> None:
        self.options = options
        self.emit = emit
        self.tracing = tracing
        self.debug = Logger.enabled("debug")  # asked once per turn, not per call
        self.approved = False
        """The batch running now was approved by a person (its hook is skipped)."""
        binding = getattr(options, "_binding", None)
        self.checkpoint: Callable[[], Awaitable[None]] | None = (
            None if binding is None else functools.partial(binding.save, options)
        )
        """Saves the session after each result when it is bound to a store."""


class _Output:
    """A running call's output chunks: streamed as events, the tail kept for a timeout."""

    __slots__ = ("call", "chunks", "emit", "size")

    def __init__(self, call: ToolCall, emit: Emit | None) -> None:
        self.call = call
        self.emit = emit
        self.chunks: list[str] = []
        self.size = 0

    async def add(self, chunk: ToolChunk) -> None:
        self.chunks.append(chunk.text)
        self.size += len(chunk.text)
        while self.size > TIMEOUT_TAIL and len(self.chunks) > 1:
            self.size -= len(self.chunks.pop(0))
        if self.emit is not None:
            call = self.call
            await self.emit(
                ToolOutput._fast(
                    kind="tool_output",
                    call_id=call.id,
                    name=call.name,
                    stream=chunk.stream,
                    text=chunk.text,
                )
            )

    def tail(self) -> str:
        """The last :data:`TIMEOUT_TAIL` characters."""
        return "".join(self.chunks)[-TIMEOUT_TAIL:]


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s" if math.isfinite(value) else "inf"
