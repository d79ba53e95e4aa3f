"""The fake Messages API: scripted answers, containers, and the stream with its faults."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

import anyio

from conjure_async.messages import MessagesResponse
from conjure_async.testing._fake._accounting import (
    PromptCache,
    block_tokens,
    minimum_cacheable,
    render,
)
from conjure_async.testing._fake._context import (
    COMPACTION_BETA,
    Prepared,
    compaction_block,
    prepare,
)
from conjure_async.testing._fake._faults import (
    MidStreamFault,
    PlainJSON,
    StreamDrop,
    StreamFault,
    StreamPings,
    StreamRaw,
)
from conjure_async.testing._fake._http import HTTPError, Responder
from conjure_async.testing._fake._skills import SkillStore
from conjure_async.testing._fake._sse import frame, message_stream_events

__all__ = ["MAX_CONTAINER_SKILLS", "Messages", "MessagesStep"]

MAX_CONTAINER_SKILLS = 8

MessagesStep: TypeAlias = (
    MessagesResponse
    | Mapping[str, Any]
    | Callable[[dict[str, Any]], MessagesResponse | Mapping[str, Any]]
    | Callable[[dict[str, Any]], Awaitable[MessagesResponse | Mapping[str, Any]]]
)
"""One scripted Messages answer: a response, its dict, or a function of the request body."""

_CODE_EXECUTION_PREFIX = "code_execution_"


class Messages:
    """``POST /v1/messages``: the next scripted answer, as JSON or as a stream.

    Args:
        responses: Answers used in order, or one function answering every call.
        skills: The Skills store (a request's container may name its skills).
        ids: The server's counter, shared by every id it makes.
        closing: Set when the server closes (ends a never-finishing stream).
        cache: The server's prompt cache.
        accounting: Report usage as the API computes it (else the answer's own).
    """

    def __init__(
        self,
        responses: Iterable[MessagesStep] | Callable[[dict[str, Any]], Any],
        *,
        skills: SkillStore,
        ids: itertools.count[int],
        closing: anyio.Event,
        cache: PromptCache,
        accounting: bool = False,
    ) -> None:
        self._queue: list[MessagesStep] = []
        self._responder: Callable[[dict[str, Any]], Any] | None = None
        if callable(responses):
            self._responder = responses
        else:
            self._queue.extend(responses)
        self._skills = skills
        self._ids = ids
        self._closing = closing
        self._cache = cache
        self.accounting = accounting

    def queue(self, *steps: MessagesStep) -> None:
        """Add answers for the next calls."""
        self._queue.extend(steps)

    @property
    def remaining(self) -> int:
        """Answers still queued."""
        return len(self._queue)

    async def answer(
        self,
        body: dict[str, Any] | None,
        out: Responder,
        stream_fault: StreamFault | None,
        *,
        text_chunk_size: int,
        json_chunk_size: int,
        betas: list[str] = [],  # noqa: B006 - read only
    ) -> None:
        """Answer one request: whole JSON, or the event stream (with ``stream_fault`` in it)."""
        if body is None:
            raise HTTPError(400, "the body must be a JSON object")
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            raise HTTPError(400, f"{missing[0]}: Field required")
        _check_output_config(body.get("output_config"))
        container = self._container_for(body)
        prepared = prepare(body, betas)
        plan = prepared.plan
        compaction: dict[str, Any] | None = None
        if plan is not None and plan.compact is not None:
            compacts = prepared.rendered.total >= plan.compact_trigger
            compaction = compaction_block(prepared) if compacts else None
        if compaction is not None and plan is not None and plan.compact is not None:
            if plan.compact.get("pause_after_compaction"):
                answer: dict[str, Any] = {"content": [compaction], "stop_reason": "compaction"}
            else:
                answer = await self._next_answer(body)
                answer["content"] = [compaction, *(answer.get("content") or [])]
        else:
            answer = await self._next_answer(body)
        answer.setdefault("type", "message")
        answer.setdefault("role", "assistant")
        if not answer.get("id"):
            answer["id"] = f"msg_fake{next(self._ids):06d}"
        if not answer.get("model"):
            answer["model"] = body["model"]
        if container is not None and answer.get("container") is None:
            answer["container"] = container
        answer.setdefault("stop_sequence", None)
        answer.setdefault("usage", {"input_tokens": 10, "output_tokens": 5})
        if self.accounting:
            answer["usage"] = self._usage(body, prepared, compaction, answer, betas)
        if plan is not None:
            answer["context_management"] = {"applied_edits": prepared.applied}
        if body.get("stream") is not True or isinstance(stream_fault, PlainJSON):
            await out.json(answer)
            return
        events = message_stream_events(
            answer, text_chunk_size=text_chunk_size, json_chunk_size=json_chunk_size
        )
        await self._stream(events, out, stream_fault)

    async def count(self, body: dict[str, Any] | None, out: Responder, betas: list[str]) -> None:
        """``POST /v1/messages/count_tokens``: the prompt's tokens, no caching, no compaction."""
        if body is None:
            raise HTTPError(400, "the body must be a JSON object")
        for key in ("model", "messages"):
            if key not in body:
                raise HTTPError(400, f"{key}: Field required")
        for key in ("max_tokens", "stream", "container"):
            if key in body:
                raise HTTPError(400, f"{key}: Extra inputs are not permitted")
        prepared = prepare(body, betas)
        result: dict[str, Any] = {"input_tokens": prepared.rendered.total}
        if prepared.plan is not None:
            result["context_management"] = {"original_input_tokens": prepared.original_tokens}
        await out.json(result)

    def _usage(
        self,
        body: dict[str, Any],
        prepared: Prepared,
        compaction: dict[str, Any] | None,
        answer: dict[str, Any],
        betas: list[str],
    ) -> dict[str, Any]:
        """The usage the API reports: cache reads and writes from this request's breakpoints."""
        model = str(body.get("model", ""))
        minimum = minimum_cacheable(model)
        output = sum(
            block_tokens(b) for b in answer.get("content") or () if b.get("type") != "compaction"
        )
        iterations: list[dict[str, Any]] = []
        if compaction is not None:
            closed = _iteration(
                "compaction",
                prepared.rendered.total,
                self._cache.account(prepared.rendered, minimum),
                block_tokens(compaction),
            )
            iterations.append(closed)
            if answer.get("stop_reason") == "compaction":
                usage = _iteration("message", 0, None, 0)
                usage.pop("type")
                usage["iterations"] = iterations
                return usage
            summary_prompt = render(
                model,
                body.get("tools"),
                body.get("system"),
                [{"role": "assistant", "content": [compaction]}],
            )
            message = _iteration(
                "message",
                summary_prompt.total,
                self._cache.account(summary_prompt, minimum),
                output,
            )
        else:
            message = _iteration(
                "message",
                prepared.rendered.total,
                self._cache.account(prepared.rendered, minimum),
                output,
            )
        iterations.append(message)
        usage = {k: v for k, v in message.items() if k != "type"}
        if COMPACTION_BETA in betas:
            usage["iterations"] = iterations
        return usage

    async def _next_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._responder is not None:
            step: Any = self._responder
        elif self._queue:
            step = self._queue.pop(0)
        else:
            raise HTTPError(500, "FakeAnthropicServer: no scripted Messages response left")
        if callable(step):
            step = step(body)
            if inspect.isawaitable(step):
                step = await step
        if isinstance(step, MessagesResponse):
            return step.to_wire()
        if isinstance(step, Mapping):
            copied: dict[str, Any] = json.loads(json.dumps(dict(step)))  # a deep copy
            return copied
        raise TypeError(f"a scripted Messages step produced {type(step).__name__}")

    def _container_for(self, body: dict[str, Any]) -> dict[str, Any] | None:
        container = body.get("container")
        tools = body.get("tools") or []
        uses_code = any(str(t.get("type", "")).startswith(_CODE_EXECUTION_PREFIX) for t in tools)
        if container is None and not uses_code:
            return None
        skills: list[dict[str, Any]] = []
        container_id: str | None = None
        if isinstance(container, str):
            container_id = container
        elif isinstance(container, dict):
            container_id = container.get("id")
            skills = list(container.get("skills") or [])
        if skills and not uses_code:
            raise HTTPError(400, "container.skills requires the code execution tool")
        if len(skills) > MAX_CONTAINER_SKILLS:
            raise HTTPError(
                400, f"container.skills: at most {MAX_CONTAINER_SKILLS} skills per request"
            )
        for entry in skills:
            if entry.get("type") == "custom" and entry.get("skill_id") not in self._skills:
                raise HTTPError(404, f"skill {entry.get('skill_id')!r} not found")
        result: dict[str, Any] = {
            "id": container_id or f"container_fake{next(self._ids):06d}",
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat(),
        }
        if skills:
            result["skills"] = [
                {
                    "type": s.get("type"),
                    "skill_id": s.get("skill_id"),
                    "version": s.get("version", "latest"),
                }
                for s in skills
            ]
        return result

    async def _stream(
        self,
        events: list[tuple[str, dict[str, Any]]],
        out: Responder,
        stream_fault: MidStreamFault | None,
    ) -> None:
        """Send ``events`` as server-sent events; ``stream_fault`` takes over at its event."""
        await out.start(200, "text/event-stream; charset=utf-8")
        for count, (event, data) in enumerate(events):
            if stream_fault is not None and count == stream_fault.after_events:
                await self._play(stream_fault, out)
                return
            await out.chunk(frame(event, data))
        await out.chunk(b"", more=False)

    async def _play(self, fault: MidStreamFault, out: Responder) -> None:
        """End a started stream the way ``fault`` says."""
        if isinstance(fault, StreamDrop):
            await out.drop()
        elif isinstance(fault, StreamRaw):
            await out.chunk(fault.data, more=False)
        elif isinstance(fault, StreamPings):
            await self._ping_forever(out, fault.interval)
        else:
            error = {"type": "error", "error": {"type": fault.error_type, "message": fault.message}}
            await out.chunk(frame("error", error), more=False)

    async def _ping_forever(self, out: Responder, interval: float) -> None:
        """Send ``ping`` events until the client disconnects or the server closes."""
        while not self._closing.is_set():
            await out.chunk(frame("ping", {"type": "ping"}))
            if await out.disconnected_within(interval):
                return
        with contextlib.suppress(Exception):
            await out.chunk(b"", more=False)


def _iteration(kind: str, total: int, cache: Any, output: int) -> dict[str, Any]:
    """One sampling pass's usage: ``total`` input tokens, split by what the cache did."""
    read = cache.read if cache is not None else 0
    write_5m = cache.write_5m if cache is not None else 0
    write_1h = cache.write_1h if cache is not None else 0
    return {
        "type": kind,
        "input_tokens": total - read - write_5m - write_1h,
        "output_tokens": output,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
    }


def _check_output_config(config: Any) -> None:
    """Refuse an ``output_config`` the API would refuse: 400, like the API.

    Structured outputs (``output_config.format``): ``type`` is
    ``json_schema``, the ``schema`` an object schema, and every object in it
    closed (``additionalProperties: false``).
    """
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise HTTPError(400, "output_config: Input should be an object")
    output_format = config.get("format")
    if output_format is None:
        return
    if not isinstance(output_format, Mapping) or output_format.get("type") != "json_schema":
        raise HTTPError(400, "output_config.format.type: Input should be 'json_schema'")
    schema = output_format.get("schema")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise HTTPError(400, "output_config.format.schema: the schema must be an object schema")
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if item.get("type") == "object" and item.get("additionalProperties") is not False:
                raise HTTPError(
                    400,
                    "output_config.format.schema: every object must set "
                    "additionalProperties to false",
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
