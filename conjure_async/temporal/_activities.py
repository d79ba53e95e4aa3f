"""The durable session's activities: open, model call, tool call, close.

They run on any worker of the session's task queue (host-bound backends on
their host's queue). A worker keeps the backends it has opened in a cache
keyed by session and backend index; a worker that has never seen the session
(a restart, another machine) rebuilds the backend from its spec (the factory
registered for its ``kind``, the spec's ``config``) and its state
(:meth:`Backend.load_state`), then opens it. Nothing here assumes the worker
that ran the previous step is alive.

A tool call heartbeats while it runs, so a worker that dies is noticed after
``heartbeat_timeout`` and the call is retried elsewhere (at least once). The
call carries a stable idempotency key (workflow id + ``tool_use`` id) in
:attr:`ToolContext.idempotency_key` for the backends that can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conjure_async._exceptions import BackendError, ConjureError
from conjure_async._logging import get_logger
from conjure_async._model_call import overrides
from conjure_async._names import tool_routes
from conjure_async._tool_execution import TIMED_OUT, TIMEOUT_TAIL
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolResult,
)
from conjure_async.messages import MessagesRequest
from conjure_async.models._base import ApiCallback, coerce_response
from conjure_async.skills import available_skills_block
from conjure_async.temporal._spec import (
    ACTIVITY_CLOSE,
    ACTIVITY_MODEL,
    ACTIVITY_OPEN,
    ACTIVITY_TOOL,
    BackendSpec,
    CloseInput,
    ModelInput,
    OpenInput,
    OpenOutput,
    ToolInput,
    ToolOutput,
    result_to_wire,
)

__all__ = ["BackendFactory", "SessionActivities"]

BackendFactory = Callable[[dict[str, Any]], Backend]
"""Builds a backend from its spec's ``config`` (registered per ``kind`` with the worker)."""

_REQUEST_HOOKS = ("prepare_request", "handle_block", "handle_response", "after_response")


class SessionActivities:
    """The activities of a worker, with its cache of open backends.

    Args:
        backends: A factory per backend ``kind``.
        models: The model callbacks, by the key a :class:`DurableConfig` names.
        host: This worker's host id (host-bound backends are routed to it).
        deps: Passed to tools as ``ctx.deps``.
    """

    def __init__(
        self,
        backends: Mapping[str, BackendFactory],
        models: Mapping[str, ApiCallback],
        *,
        host: str,
        deps: Any = None,
    ) -> None:
        self._factories = dict(backends)
        self._models = dict(models)
        self.host = host
        self._deps = deps
        self._open: dict[tuple[str, int], Backend] = {}
        self._tg: TaskGroup | None = None

    def activities(self) -> list[Callable[..., Any]]:
        """The activity functions to register with a Temporal worker."""
        return [self.open_session, self.call_model, self.run_tool, self.close_backend]

    # -- lifecycle of the cache ------------------------------------------------

    async def __aenter__(self) -> SessionActivities:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            for backend in list(self._open.values()):
                await _close_quietly(backend)
            self._open.clear()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self._tg = None

    def _build(self, spec: BackendSpec) -> Backend:
        factory = self._factories.get(spec.kind)
        if factory is None:
            raise _not_registered("backend factory for kind", spec.kind, self._factories)
        backend = factory(dict(spec.config))
        if backend.kind != spec.kind:
            raise _fatal(
                BackendError(f"the factory for {spec.kind!r} built a {backend.kind!r} backend")
            )
        if getattr(backend, "keep_container", None) is False:
            raise _fatal(
                BackendError(
                    f"a {backend.kind} backend in a durable session needs keep_container=True "
                    "(its container must outlive the worker that created it)"
                )
            )
        for hook in _REQUEST_HOOKS:
            if overrides(backend, hook):
                raise _fatal(
                    BackendError(
                        f"the {backend.kind} backend reads or changes model requests "
                        f"({hook}); it cannot run in a durable session"
                    )
                )
        return backend

    async def _opened(
        self, session_id: str, index: int, spec: BackendSpec, state: dict[str, Any]
    ) -> Backend:
        """This worker's open backend of the session, rebuilt and opened if it has none."""
        key = (session_id, index)
        backend = self._open.get(key)
        if backend is None:
            backend = self._build(spec)
            backend.load_state(dict(state))
            await self._open_backend(backend, session_id)
            self._open[key] = backend
        return backend

    async def _open_backend(self, backend: Backend, session_id: str) -> None:
        if self._tg is None:
            raise RuntimeError("SessionActivities is not entered (use conjure_worker)")
        await backend.open(
            BackendContext(
                session_id=session_id,
                task_group=self._tg,
                logger=get_logger(session_id=session_id, backend=backend.kind),
            )
        )

    # -- activities ------------------------------------------------------------

    @activity.defn(name=ACTIVITY_OPEN)
    async def open_session(self, request: OpenInput) -> OpenOutput:
        """Build and open the backends; return the tools, system prompt and states."""
        backends = [self._build(spec) for spec in request.config.backends]
        opened: list[Backend] = []
        try:
            for backend in backends:
                await self._open_backend(backend, request.session_id)
                opened.append(backend)
            routes = tool_routes(backends)
            system = _system_prompt(request.config.system, backends)
        except ConjureError as exc:
            for backend in opened:
                await _close_quietly(backend)
            raise _fatal(exc) from exc
        except BaseException:
            for backend in opened:
                await _close_quietly(backend)
            raise
        for index, backend in enumerate(backends):
            self._open[(request.session_id, index)] = backend
        return OpenOutput(
            tools=[d.to_wire() for _, d in routes.values()],
            kinds={name: backends.index(b) for name, (b, _) in routes.items()},
            system=system,
            states=[b.dump_state() for b in backends],
            host=self.host,
        )

    @activity.defn(name=ACTIVITY_MODEL)
    async def call_model(self, request: ModelInput) -> dict[str, Any]:
        """One model call: the registered callback, the response as JSON."""
        model = self._models.get(request.model)
        if model is None:
            raise _not_registered("model", request.model, self._models)
        try:
            response = coerce_response(await model(MessagesRequest.model_validate(request.request)))
        except ConjureError as exc:
            raise _failure(exc) from exc
        return response.to_wire()

    @activity.defn(name=ACTIVITY_TOOL)
    async def run_tool(self, request: ToolInput) -> ToolOutput:
        """Run one tool call, heartbeating; return its result and the backend's state."""
        try:
            backend = await self._opened(
                request.session_id, request.index, request.spec, request.state
            )
        except ConjureError as exc:
            raise _failure(exc) from exc
        call = ToolCall(request.call_id, request.name, dict(request.input))
        ctx: ToolContext[Any] = ToolContext(
            session_id=request.session_id,
            call_id=call.id,
            tool_name=call.name,
            logger=get_logger(session_id=request.session_id, call_id=call.id, tool=call.name),
            deps=self._deps,
            idempotency_key=request.idempotency_key,
        )
        info = activity.info()
        beat = (info.heartbeat_timeout.total_seconds() / 3) if info.heartbeat_timeout else 5.0
        # A plain task, not a task group: the tool's own errors stay unwrapped.
        # (A local activity has no heartbeat.)
        beating = asyncio.get_running_loop().create_task(
            _heartbeat(beat) if not info.is_local else anyio.sleep_forever()
        )
        try:
            result = await _execute(backend, call, ctx, request.timeout)
        except ConjureError as exc:
            raise _failure(exc) from exc
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        return ToolOutput(result=result_to_wire(result), state=backend.dump_state())

    @activity.defn(name=ACTIVITY_CLOSE)
    async def close_backend(self, request: CloseInput) -> None:
        """Close one backend of an ending session (rebuilt first if this worker has none)."""
        key = (request.session_id, request.index)
        backend = self._open.pop(key, None)
        if backend is None:
            backend = self._build(request.spec)
            backend.load_state(dict(request.state))
            await self._open_backend(backend, request.session_id)
        remove = getattr(backend, "remove_container", None)  # a kept container goes now
        if remove is not None:
            with anyio.CancelScope(shield=True):
                await remove()
        await _close_quietly(backend)


async def _heartbeat(every: float) -> None:
    while True:
        activity.heartbeat()
        await anyio.sleep(every)


async def _execute(
    backend: Backend, call: ToolCall, ctx: ToolContext[Any], limit: float
) -> ToolResult:
    """Consume ``run_tool``, stopped after ``limit`` seconds (the session's rule)."""
    result: ToolResult | None = None
    tail: list[str] = []
    with anyio.move_on_after(limit if math.isfinite(limit) else math.inf) as scope:
        agen = backend.run_tool(call, ctx)
        try:
            async for item in agen:
                if isinstance(item, ToolChunk):
                    if not activity.info().is_local:
                        activity.heartbeat()
                    tail.append(item.text)
                    if sum(map(len, tail)) > 2 * TIMEOUT_TAIL:
                        tail = ["".join(tail)[-TIMEOUT_TAIL:]]
                elif isinstance(item, ToolResult):
                    result = item
        except BaseException:
            await agen.aclose()  # type: ignore[attr-defined] # run_tool is an async generator
            raise
    if scope.cancelled_caught:
        partial = "".join(tail)[-TIMEOUT_TAIL:]
        note = TIMED_OUT.format(seconds=f"{limit:g}s")
        return ToolResult(
            output=f"{partial}\n{note}" if partial else note, is_error=True, timed_out=True
        )
    if result is None:
        raise BackendError(f"backend {backend.kind} yielded no result for {call.name}")
    return result


def _system_prompt(prefix: str | None, backends: list[Backend]) -> str | None:
    """The system prompt, built as ``Session`` builds it."""
    parts: list[str] = [prefix] if prefix else []
    listings = [listing for b in backends for listing in b.skill_listings()]
    if listings:
        parts.append(available_skills_block(listings))
    parts.extend(note for b in backends if (note := b.prompt_notes()))
    return "\n\n".join(parts) or None


async def _close_quietly(backend: Backend) -> None:
    with anyio.CancelScope(shield=True):
        try:
            with anyio.fail_after(30):
                await backend.aclose()
        except Exception as exc:  # noqa: BLE001 - closing must go on for the others
            get_logger(backend=backend.kind).error("backend.close_failed", error=repr(exc))


def _failure(exc: ConjureError) -> ApplicationError:
    """An error of the package's tree as a Temporal failure named by its class."""
    return ApplicationError(str(exc), type=type(exc).__name__)


def _fatal(exc: ConjureError) -> ApplicationError:
    """A failure no retry can fix."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def _not_registered(what: str, name: str, registered: Iterable[str]) -> ApplicationError:
    """This worker lacks what the session names (a retry on it cannot help)."""
    return _fatal(
        BackendError(f"this worker has no {what} {name!r} (registered: {sorted(registered)})")
    )
