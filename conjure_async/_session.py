"""The session: history, the supervised conversation loop, and its events."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self

import anyio
from anyio.abc import ObjectSendStream, TaskGroup
from opentelemetry.trace import INVALID_SPAN
from typing_extensions import TypeVar

from conjure_async._exceptions import (
    BackendError,
    MaxIterationsError,
    ModelResponseError,
    SessionStateError,
    SkillConflictError,
    ToolConflictError,
)
from conjure_async._logging import Logger, get_logger
from conjure_async._schema import schema_errors
from conjure_async._telemetry import Telemetry
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolResult,
)
from conjure_async.events import (
    CreatedFile,
    ErrorEvent,
    Event,
    FileCreated,
    ModelResponded,
    Paused,
    Reply,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolOutput,
    ToolStarted,
    TurnFinished,
)
from conjure_async.messages import (
    ContentBlock,
    Message,
    MessagesRequest,
    MessagesResponse,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from conjure_async.models._base import ApiCallback, accepts_on_block, call_model
from conjure_async.skills import available_skills_block

__all__ = [
    "AfterToolCall",
    "BeforeToolCall",
    "Deny",
    "Rewrite",
    "Session",
]

DepsT = TypeVar("DepsT", default=None)

DEFAULT_MODEL = "claude-sonnet-5-5"
STATE_VERSION = 1
_TIMEOUT_TAIL = 4000
_END_REASONS = frozenset({"end_turn", "stop_sequence", "max_tokens", "refusal"})
_MAX_STATE_DEPTH = 200
"""Deepest JSON nesting a restored state may have (far beyond real content blocks)."""

NOT_RUN_CANCELLED = "Tool call cancelled before it finished."
"""The result the model receives for a call that was cancelled (or never answered)."""
NOT_RUN_MAX_TOKENS = (
    "This tool call was not run: the response was cut off by max_tokens before its "
    "input was complete."
)
"""The result the model receives for a call in a response cut off by ``max_tokens``."""


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


@dataclass(slots=True)
class _Route:
    backend: Backend
    definition: ToolDefinition


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@dataclass(slots=True)
class _UsageSum:
    """Token counts summed cheaply (a pydantic ``Usage`` is built only when read)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_creation_input_tokens += usage.cache_creation_input_tokens or 0
        self.cache_read_input_tokens += usage.cache_read_input_tokens or 0

    def freeze(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens,
        )

    @classmethod
    def of(cls, usage: Usage) -> _UsageSum:
        total = cls()
        total.add(usage)
        return total


@dataclass(slots=True)
class _Turn:
    """Mutable bookkeeping of one chat."""

    emit: Callable[[Event], Awaitable[None]]
    usage: _UsageSum
    records: list[ToolCallRecord]
    files: list[CreatedFile]
    iterations: int = 0
    pauses: int = 0
    server_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracing: bool = True
    start: int = 0
    """Index of the turn's first message after the user's (its replies start there)."""


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
        tracer_provider: OpenTelemetry provider (default: the global one).
        capture_content: Put tool arguments and results on spans.
        skills_instructions: Include usage instructions with the skills block.
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
        deps: DepsT = None,  # type: ignore[assignment]
        session_id: str | None = None,
        tracer_provider: Any = None,
        capture_content: bool = False,
        skills_instructions: bool = True,
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
        self.session_id = session_id or uuid.uuid4().hex
        self.skills_instructions = skills_instructions
        self._telemetry = Telemetry(tracer_provider, capture_content=capture_content)
        self._streams_blocks = accepts_on_block(model)
        self._limiter = anyio.CapacityLimiter(max_concurrent_tools)
        self._lock = anyio.Lock()
        self._log: Logger = get_logger(session_id=self.session_id)
        self._history: list[Message] = []
        self._usage = _UsageSum()
        self._files: list[CreatedFile] = []
        self._routes: dict[str, _Route] = {}
        self._tool_dicts: list[dict[str, Any]] = []
        self._system: str | None = None
        self._tg: TaskGroup | None = None
        self._state = "new"
        self._check_tool_names()
        self._check_skill_names()

    # -- lifecycle ---------------------------------------------------------

    def _check_tool_names(self) -> None:
        for backend in self.backends:
            for definition in backend.tools():
                other = self._routes.get(definition.name)
                if other is not None:
                    raise ToolConflictError(
                        f"tool {definition.name!r} is offered by both "
                        f"{type(other.backend).__name__} ({other.backend.kind}) and "
                        f"{type(backend).__name__} ({backend.kind})"
                    )
                self._routes[definition.name] = _Route(backend, definition)
        self._tool_dicts = [r.definition.to_wire() for r in self._routes.values()]

    def _check_skill_names(self) -> None:
        """Refuse two skills of one name: the model could not tell them apart."""
        owners: dict[str, Backend] = {}
        for backend in self.backends:
            for listing in backend.skill_listings():
                other = owners.get(listing.name)
                if other is backend:
                    raise SkillConflictError(
                        f"skill {listing.name!r} is offered twice by "
                        f"{type(backend).__name__} ({backend.kind})"
                    )
                if other is not None:
                    raise SkillConflictError(
                        f"skill {listing.name!r} is offered by both "
                        f"{type(other).__name__} ({other.kind}) and "
                        f"{type(backend).__name__} ({backend.kind}); rename one"
                    )
                owners[listing.name] = backend

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise SessionStateError(f"a session can be opened once (it is {self._state})")
        self._state = "opening"
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        opened: list[Backend] = []
        try:
            for backend in self.backends:
                await backend.open(
                    BackendContext(
                        session_id=self.session_id,
                        task_group=tg,
                        logger=self._log.bind(backend=backend.kind),
                    )
                )
                opened.append(backend)
            self._check_skill_names()
            self._system = self._build_system_prompt()
        except BaseException:
            await self._close_backends(opened)
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            self._state = "closed"
            raise
        self._state = "open"
        self._log.debug("session.opened", backends=[b.kind for b in self.backends])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closing"
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            # Only background work runs in the task group (each chat catches its
            # own errors), so the body's exception is not fed into it: it
            # propagates unchanged instead of wrapped in an ExceptionGroup.
            await self._tg.__aexit__(None, None, None)
        finally:
            await self._close_backends(self.backends)
            self._state = "closed"
            self._log.debug("session.closed")
        return None

    async def _close_backends(self, backends: Sequence[Backend]) -> None:
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
        if self._state != "open" or self._tg is None:
            raise SessionStateError(
                f"the session is {self._state}; use it inside 'async with Session(...)'"
            )
        return self._tg

    # -- public state ------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """A copy of the conversation history."""
        return list(self._history)

    @property
    def usage(self) -> Usage:
        """Token usage summed over every model call of this session."""
        return self._usage.freeze()

    @property
    def files(self) -> list[CreatedFile]:
        """Every file created by tools in this session, tagged with its backend."""
        return list(self._files)

    @property
    def system_prompt(self) -> str | None:
        """The system prompt sent with each request (after the session opened)."""
        return self._system

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The client tool definitions sent to the model."""
        return list(self._tool_dicts)

    async def download(
        self,
        file: CreatedFile,
        directory: str | os.PathLike[str],
        *,
        overwrite: bool = False,
    ) -> Path:
        """Fetch a file a tool reported (``reply.files``, ``session.files``) into ``directory``.

        The same call whatever ran the tool: a Local file is copied from the
        work dir, a Docker file out of the container, a hosted file through
        the Files API. Returns the local path (the file's name made safe).

        Raises:
            SessionStateError: No backend of this session reports files from
                ``file.source`` (or the session is not open).
            FileExistsError: The target exists and ``overwrite`` is false.
            FileNotFoundError: The file is gone.
            BackendError: The backend failed while copying.
        """
        self._ensure_open()
        for backend in self.backends:
            if backend.kind == file.source:
                folder = Path(directory)
                await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
                return await backend.download(file, folder, overwrite=overwrite)
        raise SessionStateError(
            f"no backend of this session serves files from {file.source!r} "
            f"(backends: {[b.kind for b in self.backends]})"
        )

    def reset(self) -> None:
        """Forget the conversation history (usage totals and files stay)."""
        self._history.clear()

    def dump_state(self) -> dict[str, Any]:
        """Return the session's state as JSON-able data.

        Covers the history, usage, created files and each backend's own state
        (e.g. a hosted container id); :meth:`restore` resumes from it, in this
        process or another.
        """
        return {
            "version": STATE_VERSION,
            "session_id": self.session_id,
            "model_name": self.model_name,
            "messages": [m.to_wire() for m in self._history],
            "usage": self._usage.freeze().to_wire(),
            "files": [f.model_dump(mode="json") for f in self._files],
            "backends": [{"kind": b.kind, "state": b.dump_state()} for b in self.backends],
        }

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
        the state is malformed.
        """
        parsed = _parse_state(state)
        options.setdefault("session_id", parsed.session_id)
        options.setdefault("model_name", parsed.model_name)
        session: Session[Any] = cls(backend, model=model, **options)
        kinds = [b.kind for b in session.backends]
        saved_kinds = [kind for kind, _ in parsed.backends]
        if kinds != saved_kinds:
            raise SessionStateError(
                f"state was saved with backends {saved_kinds}, restored with {kinds}"
            )
        for b, (kind, backend_state) in zip(session.backends, parsed.backends, strict=True):
            try:
                b.load_state(backend_state)
            except SessionStateError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise SessionStateError(
                    f"invalid session state: the {kind} backend state was refused: {exc}"
                ) from exc
        messages = parsed.messages
        usage, files = parsed.usage, parsed.files
        session._history = messages
        session._usage = _UsageSum.of(usage)
        session._files = files
        session._repair_unanswered_calls()
        return session

    def _repair_unanswered_calls(self) -> None:
        """Answer client tool calls left unanswered at the end (as after a cancellation)."""
        if not self._history or self._history[-1].role != "assistant":
            return
        last = self._history[-1].content
        if isinstance(last, list):
            unanswered = [b for b in last if isinstance(b, ToolUseBlock)]
            if unanswered:
                self._answer_unrun(unanswered, NOT_RUN_CANCELLED)

    # -- chatting ----------------------------------------------------------

    async def chat(self, message: str | list[dict[str, Any]]) -> Reply:
        """Send ``message`` and run the turn to its end; return the reply.

        The same turn as :meth:`stream` with the events drained (it runs in
        the calling task, so cancelling the caller cancels the turn). Raises
        what the stream raises: :class:`MaxIterationsError`,
        :class:`ModelError` subclasses, :class:`BackendError` subclasses.
        """
        self._ensure_open()
        async with self._lock:
            try:
                return await self._run_turn(message, _discard)
            except Exception as exc:
                error = _unwrap(exc)
                self._log.error("chat.failed", error_type=type(error).__name__, error=str(error))
                if error is exc:
                    raise
                raise error from None

    async def stream(self, message: str | list[dict[str, Any]]) -> AsyncIterator[Event]:
        """Send ``message``; yield the turn's events as they happen.

        The turn runs in the session's task group; this iterator reads its
        events. Cancelling the iteration (e.g. a client disconnect) cancels the
        turn, kills its running tools and leaves a consistent history; so does
        closing the iterator early (``contextlib.aclosing``). On failure an
        :class:`ErrorEvent` is yielded, then the exception is raised.
        """
        tg = self._ensure_open()
        send, receive = anyio.create_memory_object_stream[Event | _Failure](64)
        scope = anyio.CancelScope()
        done = anyio.Event()

        async def runner() -> None:
            try:
                with scope, send:
                    async with self._lock:
                        try:
                            await self._run_turn(message, send.send)
                        except Exception as exc:  # noqa: BLE001 - delivered to the reader
                            await self._deliver_failure(send, exc)
            finally:
                done.set()

        tg.start_soon(runner, name=f"conjure chat {self.session_id}")
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, _Failure):
                        raise item.error
                    yield item
        finally:
            if not done.is_set():
                scope.cancel()
                with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                    await done.wait()

    async def _deliver_failure(
        self, send: ObjectSendStream[Event | _Failure], exc: Exception
    ) -> None:
        error = _unwrap(exc)
        self._log.error("chat.failed", error_type=type(error).__name__, error=str(error))
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await send.send(ErrorEvent(error_type=type(error).__name__, message=str(error)))
            await send.send(_Failure(error))

    def _drop_unanswered_server_calls(self) -> None:
        """Remove server tool calls left without a result at the end of the history.

        A turn that ended on ``pause_turn`` (the continuation cap was reached,
        or the chat was cancelled while paused) may end with a
        ``server_tool_use`` whose result never came; the API rejects a new user
        message after it. The unfinished call is dropped before the next one.
        """
        if not self._history or self._history[-1].role != "assistant":
            return
        last = self._history[-1]
        if isinstance(last.content, str):
            return
        answered = {b.tool_use_id for b in last.content if isinstance(b, ServerToolResultBlock)}
        kept = [
            b
            for b in last.content
            if not (isinstance(b, ServerToolUseBlock) and b.id not in answered)
        ]
        if len(kept) == len(last.content):
            return
        if kept:
            self._history[-1] = Message._fast(role="assistant", content=kept)
        else:
            self._history.pop()

    def _append_user(self, content: str | list[dict[str, Any]]) -> None:
        self._drop_unanswered_server_calls()
        blocks: list[Any] = [TextBlock(text=content)] if isinstance(content, str) else list(content)
        if self._history and self._history[-1].role == "user":
            last = self._history[-1]
            previous = (
                [TextBlock(text=last.content)] if isinstance(last.content, str) else last.content
            )
            merged = Message.model_validate({"role": "user", "content": [*previous, *blocks]})
            self._history[-1] = merged
            return
        if isinstance(content, str):
            self._history.append(Message(role="user", content=content))
        else:
            self._history.append(Message.model_validate({"role": "user", "content": blocks}))

    def _request(self) -> MessagesRequest:
        request = MessagesRequest._fast(
            model=self.model_name,
            max_tokens=self.max_tokens,
            messages=list(self._history),
            system=self._system,
            tools=list(self._tool_dicts) if self._tool_dicts else None,
            tool_choice=None,
            container=None,
            stream=None,
            betas=[],
        )
        for backend in self.backends:
            request = backend.prepare_request(request)
        return request

    async def _call_model(self, turn: _Turn) -> MessagesResponse:
        async def on_text(text: str) -> None:
            await turn.emit(TextDelta._fast(text=text))

        async def on_block(block: ContentBlock) -> None:
            for backend in self.backends:
                for event in backend.handle_block(block):
                    await self._emit_backend_event(event, turn)

        request = self._request()
        with self._telemetry.chat_span(self.model_name, self.max_tokens) as span:
            response = await call_model(
                self.model, request, on_text, on_block, streams_blocks=self._streams_blocks
            )
            if span.is_recording():
                span.set_attribute("gen_ai.response.id", response.id)
                span.set_attribute("gen_ai.response.model", response.model)
            self._telemetry.record_usage(span, response.usage, [response.stop_reason or ""])
        if response.stop_reason is None and not response.content:
            raise ModelResponseError("the model returned an empty response with no stop_reason")
        return response

    def _add_assistant(self, content: list[ContentBlock], *, continuation: bool) -> None:
        if continuation and self._history and self._history[-1].role == "assistant":
            last = self._history[-1]
            previous = list(last.content) if isinstance(last.content, list) else []
            self._history[-1] = Message._fast(role="assistant", content=[*previous, *content])
        else:
            self._history.append(Message._fast(role="assistant", content=content))

    async def _run_turn(
        self, message: str | list[dict[str, Any]], emit: Callable[[Event], Awaitable[None]]
    ) -> Reply:
        turn = _Turn(
            emit=emit,
            usage=_UsageSum(),
            records=[],
            files=[],
            tracing=self._telemetry.active,
        )
        send = turn
        self._append_user(message)
        turn.start = len(self._history)
        continuation = False
        with self._telemetry.agent_span(self.session_id, self.model_name) as span:
            while True:
                if turn.iterations >= self.max_iterations:
                    raise MaxIterationsError(self.max_iterations)
                turn.iterations += 1
                response = await self._call_model(turn)
                turn.usage.add(response.usage)
                self._usage.add(response.usage)
                await send.emit(
                    ModelResponded._fast(
                        stop_reason=response.stop_reason,
                        usage=response.usage,
                        model=response.model,
                    )
                )
                for backend in self.backends:
                    for event in backend.handle_response(response):
                        await self._emit_backend_event(event, turn)
                    for event in await backend.after_response():
                        await self._emit_backend_event(event, turn)
                stop = response.stop_reason
                content = self._valid_content(response.content)
                tool_uses = [b for b in content if isinstance(b, ToolUseBlock)]
                if content:
                    self._add_assistant(content, continuation=continuation)
                continuation = False
                if tool_uses and stop == "max_tokens":
                    self._answer_unrun(tool_uses, NOT_RUN_MAX_TOKENS)
                    break
                if tool_uses:
                    await self._run_tools(tool_uses, turn)
                    continue
                if stop == "pause_turn" and turn.pauses < self.max_pause_continuations:
                    turn.pauses += 1
                    continuation = True
                    await send.emit(Paused._fast(count=turn.pauses))
                    continue
                break
            text = self._reply_text(turn.start)
            reply = Reply(
                text=text,
                stop_reason=stop,
                usage=turn.usage.freeze(),
                tool_calls=turn.records,
                files=turn.files,
                iterations=turn.iterations,
            )
            self._telemetry.record_usage(span, reply.usage, [stop or ""])
            self._log.debug("chat.finished", stop_reason=stop, iterations=turn.iterations)
            await send.emit(TurnFinished(reply=reply))
        return reply

    def _valid_content(self, content: list[ContentBlock]) -> list[ContentBlock]:
        """The response's blocks as the history may keep them (a valid next request).

        A ``tool_use`` id the response already used is dropped (the API
        rejects two results for one id); the caller stores nothing for an
        empty list (the API rejects an empty assistant message).
        """
        seen: set[str] = set()
        kept: list[ContentBlock] = []
        for block in content:
            if isinstance(block, ToolUseBlock | ServerToolUseBlock):
                if block.id in seen:
                    self._log.warning("model.duplicate_tool_use_id", call_id=block.id)
                    continue
                seen.add(block.id)
            kept.append(block)
        return kept

    def _answer_unrun(self, tool_uses: Sequence[ToolUseBlock], reason: str) -> None:
        """Answer calls that will not run with error results, keeping the history valid."""
        blocks: list[ContentBlock] = [
            ToolResultBlock(tool_use_id=block.id, content=reason, is_error=True)
            for block in tool_uses
        ]
        self._history.append(Message._fast(role="user", content=blocks))

    def _reply_text(self, start: int) -> str:
        """The text of the turn's last assistant message (``""`` if it stored none)."""
        for message in reversed(self._history[start:]):
            if message.role == "assistant":
                if isinstance(message.content, str):
                    return message.content
                return "".join(b.text for b in message.content if isinstance(b, TextBlock))
        return ""

    async def _emit_backend_event(self, event: Event, turn: _Turn) -> None:
        """Pass on an event a backend reported for server-side work (hosted tools)."""
        if isinstance(event, FileCreated):
            if not self._record_file(event.file, turn):
                return
        elif isinstance(event, ToolStarted):
            turn.server_inputs[event.call_id] = event.input
        elif isinstance(event, ToolFinished):
            turn.records.append(
                ToolCallRecord._fast(
                    call_id=event.call_id,
                    name=event.name,
                    input=turn.server_inputs.pop(event.call_id, {}),
                    backend=event.backend,
                    output=event.output,
                    is_error=event.is_error,
                    exit_code=event.exit_code,
                )
            )
        await turn.emit(event)

    def _record_file(self, created: CreatedFile, turn: _Turn) -> bool:
        """Add or update a created file; return whether this chat sees it for the first time."""
        key = (created.source, created.file_id or created.path or created.name)

        def replace(files: list[CreatedFile]) -> bool:
            for index, known in enumerate(files):
                if (known.source, known.file_id or known.path or known.name) == key:
                    files[index] = created
                    return True
            files.append(created)
            return False

        replace(self._files)
        return not replace(turn.files)

    async def _run_tools(self, tool_uses: list[ToolUseBlock], turn: _Turn) -> None:
        results: list[ToolResult | None] = [None] * len(tool_uses)
        records: list[ToolCallRecord | None] = [None] * len(tool_uses)
        try:
            if len(tool_uses) == 1:
                # One call needs no task: run it in this task (same limits,
                # same cancellation), saving a task start per iteration.
                await self._run_one(0, tool_uses[0], results, records, turn)
            else:
                async with anyio.create_task_group() as tg:
                    for index, block in enumerate(tool_uses):
                        tg.start_soon(self._run_one, index, block, results, records, turn)
        finally:
            turn.records.extend(r for r in records if r is not None)
            # Always answer every tool_use, so the history stays consistent
            # even when the turn is cancelled or a tool failed hard.
            blocks: list[ContentBlock] = [
                ToolResultBlock(
                    tool_use_id=block.id,
                    content=result.output if result else NOT_RUN_CANCELLED,
                    is_error=True if result is None or result.is_error else None,
                )
                for block, result in zip(tool_uses, results, strict=True)
            ]
            self._history.append(Message._fast(role="user", content=blocks))

    async def _run_one(
        self,
        index: int,
        block: ToolUseBlock,
        results: list[ToolResult | None],
        records: list[ToolCallRecord | None],
        turn: _Turn,
    ) -> None:
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()
        try:
            await self._run_one_limited(index, block, results, records, turn)
        finally:
            self._limiter.release()

    async def _run_one_limited(
        self,
        index: int,
        block: ToolUseBlock,
        results: list[ToolResult | None],
        records: list[ToolCallRecord | None],
        turn: _Turn,
    ) -> None:
        call = ToolCall(id=block.id, name=block.name, input=block.input)
        route = self._routes.get(block.name)
        backend_kind = route.backend.kind if route else "none"
        ctx: ToolContext[DepsT] = ToolContext(
            session_id=self.session_id,
            call_id=block.id,
            tool_name=block.name,
            logger=self._log.bind(call_id=block.id, tool=block.name),
            deps=self.deps,
        )
        result: ToolResult | None = None
        if route is None:
            known = ", ".join(sorted(self._routes)) or "none"
            result = ToolResult(
                output=f"Unknown tool {block.name!r}. Available tools: {known}.",
                is_error=True,
            )
        else:
            problems = schema_errors(block.input, route.definition.input_schema)
            if problems:
                result = ToolResult(
                    output=f"Invalid arguments for {block.name}: " + "; ".join(problems),
                    is_error=True,
                )
        if result is None and self.before_tool_call is not None:
            decision = await self.before_tool_call(call, ctx)
            if isinstance(decision, Deny):
                result = ToolResult(output=decision.message, is_error=True)
            elif isinstance(decision, Rewrite):
                call = ToolCall(id=call.id, name=call.name, input=dict(decision.input))
                assert route is not None
                problems = schema_errors(call.input, route.definition.input_schema)
                if problems:  # a hook's rewrite is checked like the model's input
                    result = ToolResult(
                        output=f"Invalid arguments for {call.name} after the before_tool_call "
                        "hook rewrote them: " + "; ".join(problems),
                        is_error=True,
                    )
        await turn.emit(
            ToolStarted._fast(
                call_id=call.id, name=call.name, input=call.input, backend=backend_kind
            )
        )
        started = time.perf_counter()
        with self._telemetry.tool_span(
            call.name, call.id, backend=backend_kind, arguments=call.input
        ) as span:
            if result is None:
                assert route is not None
                result = await self._execute(route.backend, call, ctx, turn)
            if self.after_tool_call is not None:
                result = await self.after_tool_call(call, result) or result
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
        results[index] = result
        text = result.text
        await turn.emit(
            ToolFinished._fast(
                call_id=call.id,
                name=call.name,
                backend=backend_kind,
                output=text,
                is_error=result.is_error,
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
                timed_out=result.timed_out,
                duration_s=duration,
            )
        )
        records[index] = ToolCallRecord._fast(
            call_id=call.id,
            name=call.name,
            input=call.input,
            backend=backend_kind,
            output=text,
            is_error=result.is_error,
            exit_code=result.exit_code,
        )
        for created in result.files:
            if self._record_file(created, turn):
                await turn.emit(FileCreated._fast(file=created))
        ctx.logger.debug(
            "tool.finished",
            is_error=result.is_error,
            exit_code=result.exit_code,
            duration_s=round(duration, 6),
        )

    async def _execute(
        self, backend: Backend, call: ToolCall, ctx: ToolContext[Any], turn: _Turn
    ) -> ToolResult:
        tail: list[str] = []
        tail_size = 0
        result: ToolResult | None = None
        # A deadline scope rather than fail_after: the same timeout, and a
        # TimeoutError the tool itself raises is not mistaken for ours.
        with anyio.CancelScope(deadline=anyio.current_time() + self.tool_timeout) as scope:
            agen = backend.run_tool(call, ctx)
            async with contextlib.aclosing(agen):  # type: ignore[type-var]
                async for item in agen:
                    if isinstance(item, ToolChunk):
                        tail.append(item.text)
                        tail_size += len(item.text)
                        while tail_size > _TIMEOUT_TAIL and len(tail) > 1:
                            tail_size -= len(tail.pop(0))
                        await turn.emit(
                            ToolOutput._fast(
                                call_id=call.id,
                                name=call.name,
                                stream=item.stream,
                                text=item.text,
                            )
                        )
                    else:
                        result = item
        if scope.cancelled_caught:
            partial = "".join(tail)[-_TIMEOUT_TAIL:]
            note = f"[timed out after {_fmt_seconds(self.tool_timeout)}; the tool was stopped]"
            return ToolResult(
                output=f"{partial}\n{note}" if partial else note, is_error=True, timed_out=True
            )
        if result is None:
            raise BackendError(f"backend {backend.kind} yielded no result for {call.name}")
        return result


_NO_SPAN = contextlib.nullcontext(INVALID_SPAN)
"""Used instead of a tool span while no tracer provider is configured."""


async def _discard(event: Event) -> None:
    """Event sink of :meth:`Session.chat` (the reply is returned instead)."""


def _unwrap(exc: BaseException) -> BaseException:
    """The single error inside (nested) one-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s" if math.isfinite(value) else "inf"


@dataclass(frozen=True, slots=True)
class _ParsedState:
    session_id: str | None
    model_name: str | None
    messages: list[Message]
    usage: Usage
    files: list[CreatedFile]
    backends: list[tuple[str, dict[str, Any]]]


def _parse_state(state: Any) -> _ParsedState:
    """Check a dumped state field by field; any problem is a :class:`SessionStateError`."""

    def bad(what: str) -> SessionStateError:
        return SessionStateError(f"invalid session state: {what}")

    if isinstance(state, str | bytes):
        try:
            state = json.loads(state)
        except RecursionError:
            raise bad("the JSON is nested too deeply") from None
        except ValueError as exc:
            raise bad(f"not JSON ({exc})") from None
    if not isinstance(state, dict):
        raise bad(f"expected a JSON object, got {type(state).__name__}")
    if _depth_exceeds(state, _MAX_STATE_DEPTH):
        raise bad(f"nested deeper than {_MAX_STATE_DEPTH} levels")
    if state.get("version") != STATE_VERSION:
        raise bad(f"unsupported state version {state.get('version')!r} (expected {STATE_VERSION})")
    optional_text: dict[str, str | None] = {}
    for key in ("session_id", "model_name"):
        value = state.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"{key} must be a string, not {type(value).__name__}")
        optional_text[key] = value
    raw_messages, raw_files, raw_backends = (
        state.get("messages"),
        state.get("files", []),
        state.get("backends", []),
    )
    for key, value in (
        ("messages", raw_messages),
        ("files", raw_files),
        ("backends", raw_backends),
    ):
        if not isinstance(value, list):
            raise bad(f"{key} must be a list, not {type(value).__name__}")
    assert isinstance(raw_messages, list)
    assert isinstance(raw_files, list)
    assert isinstance(raw_backends, list)
    try:
        messages = [Message.model_validate(m) for m in raw_messages]
    except ValueError as exc:
        raise bad(f"messages: {_first_line(exc)}") from None
    try:
        usage = Usage.model_validate(state.get("usage", {}))
    except ValueError as exc:
        raise bad(f"usage: {_first_line(exc)}") from None
    try:
        files = [CreatedFile.model_validate(f) for f in raw_files]
    except ValueError as exc:
        raise bad(f"files: {_first_line(exc)}") from None
    backends: list[tuple[str, dict[str, Any]]] = []
    for index, saved in enumerate(raw_backends):
        if not isinstance(saved, dict) or not isinstance(saved.get("kind"), str):
            raise bad(f"backends[{index}] must be an object with a string 'kind'")
        backend_state = saved.get("state") or {}
        if not isinstance(backend_state, dict):
            raise bad(
                f"backends[{index}] ({saved['kind']}): the backend state must be an object, "
                f"not {type(backend_state).__name__}"
            )
        backends.append((saved["kind"], backend_state))
    return _ParsedState(
        session_id=optional_text["session_id"],
        model_name=optional_text["model_name"],
        messages=messages,
        usage=usage,
        files=files,
        backends=backends,
    )


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON data nests deeper than ``limit`` (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _first_line(exc: BaseException) -> str:
    """A pydantic error's summary, bounded (validation text can quote large input)."""
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."
