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
``docs/adr/0006-turn-engine.md``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from conjure_async._engine import NO_BACKEND, RunTools, TurnEngine
from conjure_async._exceptions import BackendError
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

if TYPE_CHECKING:
    from conjure_async._logging import Logger
    from conjure_async._telemetry import Telemetry

__all__ = [
    "TIMED_OUT",
    "AfterToolCall",
    "BeforeToolCall",
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


BeforeToolCall = Callable[[ToolCall, ToolContext[Any]], Awaitable[Deny | Rewrite | None]]
"""``async (call, ctx) -> None | Deny | Rewrite``; ``None`` approves the call."""

AfterToolCall = Callable[[ToolCall, ToolResult], Awaitable[ToolResult | None]]
"""``async (call, result) -> None | ToolResult``; a result replaces the original."""


class Deadlines:
    """Stops tool calls that outlive their timeout, with one sleeping task per session.

    Each running call registers its cancel scope and deadline; a watcher
    task sleeps until the earliest deadline and cancels what expired. Calls
    start later than the ones before them and share one timeout, so a new
    call almost never moves the earliest deadline: the watcher wakes about
    once per timeout, not once per call, and a call that finishes only
    removes a dict entry. Deadlines use ``time.monotonic`` (the asyncio
    loop's clock).

    Args:
        spawn: Starts the watcher in the session's task group (called once,
            on the first call).
    """

    __slots__ = ("_idle", "_nap", "_running", "_spawn", "_target", "_watching")

    def __init__(self, spawn: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
        self._spawn = spawn
        self._running: dict[anyio.CancelScope, float] = {}
        self._watching = False
        self._target = math.inf
        self._nap: anyio.CancelScope | None = None
        self._idle: anyio.Event | None = None

    def add(self, scope: anyio.CancelScope, timeout: float) -> None:
        """Cancel ``scope`` unless :meth:`remove` is called within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._running[scope] = deadline
        if not self._watching:
            self._watching = True
            self._spawn(self._watch)
        elif self._idle is not None:
            self._idle.set()
        elif deadline < self._target and self._nap is not None:
            self._nap.cancel()  # a shorter timeout than the one slept on: re-plan

    def remove(self, scope: anyio.CancelScope) -> None:
        """The call of ``scope`` is over (finished, failed or cancelled)."""
        self._running.pop(scope, None)

    async def _watch(self) -> None:
        try:
            while True:
                now = time.monotonic()
                expired = [scope for scope, at in self._running.items() if at <= now]
                for scope in expired:
                    del self._running[scope]
                    scope.cancel()
                if not self._running:
                    self._target = math.inf
                    self._idle = anyio.Event()
                    await self._idle.wait()
                    self._idle = None
                    continue
                self._target = min(self._running.values())
                with anyio.CancelScope() as self._nap:
                    await anyio.sleep(self._target - now)
                self._nap = None
        finally:
            self._watching = False


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
        options: The session: its id, deps, timeout and hooks.
        logger: The session's logger.
        telemetry: The session's span factory.
        deadlines: The session's per-call timer.
        max_concurrent: Calls running at once.
    """

    __slots__ = (
        "_deadlines",
        "_kinds",
        "_limiter",
        "_log",
        "_options",
        "_routes",
        "_telemetry",
        "engine",
    )

    def __init__(
        self,
        engine: TurnEngine,
        routes: Mapping[str, Backend],
        *,
        options: ToolOptions,
        logger: Logger,
        telemetry: Telemetry,
        deadlines: Deadlines,
        max_concurrent: int,
    ) -> None:
        self.engine = engine
        """The engine told each result (a restored session replaces it)."""
        self._routes = dict(routes)
        self._kinds = {name: backend.kind for name, backend in routes.items()}
        self._options = options
        self._log = logger
        self._telemetry = telemetry
        self._deadlines = deadlines
        self._limiter = anyio.CapacityLimiter(max_concurrent)

    async def run(self, batch: RunTools, emit: Emit | None, *, tracing: bool) -> None:
        """Run every call of ``batch`` (concurrently, bounded); each result goes to the engine.

        Cancellation propagates; the results already reported stay with the
        engine, which answers the others when the turn is cancelled.
        """
        calls = batch.calls
        # Chats on one session run one at a time, so a batch no larger than
        # the limit can never wait for it: the limiter is skipped.
        limited = len(calls) > self._limiter.total_tokens
        if len(calls) == 1 and not limited:
            # One call needs no task: it runs in the turn's task (same
            # timeout, same cancellation), saving a task start per iteration.
            await self._run_one(calls[0], batch.refusals.get(calls[0].id), emit, tracing)
            return
        async with anyio.create_task_group() as tg:
            for call in calls:
                refusal = batch.refusals.get(call.id)
                if limited:
                    tg.start_soon(self._run_limited, call, refusal, emit, tracing)
                else:
                    tg.start_soon(self._run_one, call, refusal, emit, tracing)

    async def _run_limited(
        self, call: ToolCall, refusal: str | None, emit: Emit | None, tracing: bool
    ) -> None:
        async with self._limiter:
            await self._run_one(call, refusal, emit, tracing)

    async def _run_one(
        self, call: ToolCall, refusal: str | None, emit: Emit | None, tracing: bool
    ) -> None:
        options = self._options
        ctx: ToolContext[Any] = ToolContext(
            session_id=options.session_id,
            call_id=call.id,
            tool_name=call.name,
            logger=self._log.bind(call_id=call.id, tool=call.name),
            deps=options.deps,
        )
        ran, decided = await self._approve(call, refusal, ctx)
        backend = self._kinds.get(call.name, NO_BACKEND)
        if emit is not None:
            await emit(
                ToolStarted._fast(call_id=ran.id, name=ran.name, input=ran.input, backend=backend)
            )
        started = time.perf_counter()
        if tracing:
            with self._telemetry.tool_span(
                ran.name, ran.id, backend=backend, arguments=ran.input
            ) as span:
                result = await self._complete(ran, decided, ctx, emit)
                duration = time.perf_counter() - started
                self._telemetry.record_tool_result(
                    span,
                    output=result.text,
                    is_error=result.is_error,
                    exit_code=result.exit_code,
                    duration_s=duration,
                    timed_out=result.timed_out,
                    error_type="timeout" if result.timed_out else None,
                )
        else:
            result = await self._complete(ran, decided, ctx, emit)
            duration = time.perf_counter() - started
        new_files = self.engine.on_result(
            call.id, result, input=ran.input if ran is not call else None
        )
        if emit is not None:
            await self._announce(
                ran, backend=backend, result=result, duration=duration, files=new_files, emit=emit
            )
        ctx.logger.debug(
            "tool.finished",
            is_error=result.is_error,
            exit_code=result.exit_code,
            duration_s=round(duration, 6),
        )

    async def _approve(
        self, call: ToolCall, refusal: str | None, ctx: ToolContext[Any]
    ) -> tuple[ToolCall, ToolResult | None]:
        """The call to run (a hook may rewrite it), and its result if it must not run."""
        if refusal is not None:
            return call, ToolResult(output=refusal, is_error=True)
        hook = self._options.before_tool_call
        if hook is None:
            return call, None
        decision = await hook(call, ctx)
        if isinstance(decision, Deny):
            return call, ToolResult(output=decision.message, is_error=True)
        if isinstance(decision, Rewrite):
            call = ToolCall(id=call.id, name=call.name, input=dict(decision.input))
            problem = self.engine.check_rewrite(call.name, call.input)
            if problem is not None:
                return call, ToolResult(output=problem, is_error=True)
        return call, None

    async def _complete(
        self, call: ToolCall, decided: ToolResult | None, ctx: ToolContext[Any], emit: Emit | None
    ) -> ToolResult:
        """Run the call unless it was decided, then let ``after_tool_call`` replace the result."""
        result = decided if decided is not None else await self._execute(call, ctx, emit)
        hook = self._options.after_tool_call
        if hook is not None:
            result = await hook(call, result) or result
        return result

    async def _execute(
        self, call: ToolCall, ctx: ToolContext[Any], emit: Emit | None
    ) -> ToolResult:
        """Consume the backend's ``run_tool`` generator within the timeout."""
        backend = self._routes[call.name]
        timeout = self._options.tool_timeout
        result: ToolResult | None = None
        tail: _Tail | None = None
        # A scope the session's Deadlines cancels (nothing else does), so a
        # TimeoutError the tool itself raises is not mistaken for ours.
        scope = anyio.CancelScope()
        timed = math.isfinite(timeout)
        if timed:
            self._deadlines.add(scope, timeout)
        try:
            with scope:
                agen = backend.run_tool(call, ctx)
                try:
                    async for item in agen:
                        if isinstance(item, ToolChunk):
                            if tail is None:
                                tail = _Tail()
                            tail.add(item.text)
                            if emit is not None:
                                await emit(
                                    ToolOutput._fast(
                                        call_id=call.id,
                                        name=call.name,
                                        stream=item.stream,
                                        text=item.text,
                                    )
                                )
                        else:
                            result = item
                except BaseException:
                    # Stopped early (timeout, cancellation, an error): the
                    # generator's finally blocks stop the work it started.
                    await agen.aclose()  # type: ignore[attr-defined] # run_tool is an async generator
                    raise
        finally:
            if timed:
                self._deadlines.remove(scope)
        if scope.cancelled_caught:
            partial = tail.text() if tail is not None else ""
            note = TIMED_OUT.format(seconds=_fmt_seconds(timeout))
            return ToolResult(
                output=f"{partial}\n{note}" if partial else note, is_error=True, timed_out=True
            )
        if result is None:
            raise BackendError(f"backend {backend.kind} yielded no result for {call.name}")
        return result

    @staticmethod
    async def _announce(
        call: ToolCall,
        *,
        backend: str,
        result: ToolResult,
        duration: float,
        files: list[CreatedFile],
        emit: Emit,
    ) -> None:
        await emit(
            ToolFinished._fast(
                call_id=call.id,
                name=call.name,
                backend=backend,
                output=result.text,
                is_error=result.is_error,
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
                timed_out=result.timed_out,
                duration_s=duration,
            )
        )
        for created in files:
            await emit(FileCreated._fast(file=created))


class _Tail:
    """The last :data:`TIMEOUT_TAIL` characters of a running call's output."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        while self.size > TIMEOUT_TAIL and len(self.chunks) > 1:
            self.size -= len(self.chunks.pop(0))

    def text(self) -> str:
        return "".join(self.chunks)[-TIMEOUT_TAIL:]


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s" if math.isfinite(value) else "inf"
