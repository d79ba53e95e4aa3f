"""Server-sent events of the Messages API: decode the frames, assemble the message.

:class:`SSEDecoder` turns lines into ``(event, data)`` frames;
:class:`MessageAssembler` folds the Messages API events into the complete
response dict while reporting each text delta. Tool inputs
(``input_json_delta``) are concatenated and parsed only when their block
stops. ``ping`` and unknown events are ignored; an ``error`` event raises the
matching :class:`~conjure_async._exceptions.APIStatusError` subclass (with
status 200, as the official SDK does).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from conjure_async._exceptions import (
    APIConnectionError,
    APIStatusError,
    ModelResponseError,
    redact_key_shapes,
    status_error_class,
)
from conjure_async._redact import validation_summary
from conjure_async.messages import MessagesResponse

__all__ = ["MessageAssembler", "SSEDecoder", "ServerSentEvent", "aiter_sse"]

_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One SSE frame."""

    event: str
    """The ``event:`` name (``message`` when absent)."""
    data: str
    """The ``data:`` lines joined by newlines."""


class SSEDecoder:
    """Incremental decoder of ``text/event-stream`` lines (the WHATWG rules we need)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Feed one line (without its newline); return a frame when one completes."""
        if not line:
            if not self._data and not self._event:
                return None
            frame = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event = ""
            self._data = []
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> ServerSentEvent | None:
        """Return the last frame if the stream ended without a blank line."""
        return self.feed("")


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Decode an async iterable of lines into SSE frames."""
    decoder = SSEDecoder()
    async for raw in lines:
        frame = decoder.feed(raw.rstrip("\r\n"))
        if frame is not None:
            yield frame
    last = decoder.flush()
    if last is not None:
        yield last


class MessageAssembler:
    """Folds Messages API stream events into the complete response.

    Call :meth:`handle` for each frame; it returns the text delta the frame
    carried, if any. After ``message_stop``, :attr:`done` is true and
    :meth:`response` returns the assembled :class:`MessagesResponse`.

    Args:
        request_id: The HTTP response's ``request-id``, put on raised errors.
        redact: Applied to every piece of the stream quoted in an error
            (before it is shortened); the model client passes its redactor.
    """

    def __init__(
        self,
        request_id: str | None = None,
        *,
        redact: Callable[[str], str] = redact_key_shapes,
    ) -> None:
        self.request_id = request_id
        self._redact = redact
        self.done = False
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._completed: list[dict[str, Any]] = []
        self._partial_json: dict[int, list[str]] = {}
        self._cut_inputs: dict[int, str] = {}

    def handle(self, frame: ServerSentEvent) -> str | None:
        """Apply one frame; return its text delta, if it carried one.

        Raises:
            APIStatusError: The frame is an ``error`` event (a subclass per error type).
            ModelResponseError: The frame is malformed or out of order.
        """
        if frame.event == "ping" or not frame.data:
            return None
        try:
            data = json.loads(frame.data)
        except ValueError as exc:
            raise ModelResponseError(
                f"malformed JSON in the {frame.event!r} stream event: {self._snippet(frame.data)!r}"
                + self._rid()
            ) from exc
        if not isinstance(data, dict):
            raise ModelResponseError(f"stream event {frame.event!r} is not an object" + self._rid())
        kind = data.get("type", frame.event)
        if kind == "error":
            raise self._stream_error(data)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return None  # unknown events are ignored, as the API asks
        try:
            result: str | None = handler(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelResponseError(
                f"unexpected {kind!r} stream event: {self._snippet(frame.data)!r}" + self._rid()
            ) from exc
        return result

    def response(self) -> MessagesResponse:
        """The assembled response.

        Raises:
            APIConnectionError: The stream ended before ``message_stop``.
            ModelResponseError: The assembled message does not validate.
        """
        if not self.done or self._message is None:
            raise APIConnectionError(
                "the response stream ended before message_stop", request_id=self.request_id
            )
        message = dict(self._message)
        if self._cut_inputs and message.get("stop_reason") != "max_tokens":
            index, raw = next(iter(self._cut_inputs.items()))
            raise ModelResponseError(
                f"the input of content block {index} is not valid JSON: "
                f"{self._snippet(raw)!r}" + self._rid()
            )
        # Under max_tokens a cut tool input stays {}: the session never runs it.
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        try:
            return MessagesResponse.model_validate(message)
        except ValueError as exc:
            raise ModelResponseError(
                f"the streamed message does not validate: {validation_summary(exc)}" + self._rid()
            ) from exc

    # -- events ---------------------------------------------------------------

    def _rid(self) -> str:
        return f" (request_id={self.request_id})" if self.request_id else ""

    def _snippet(self, text: str) -> str:
        """What an error quotes of the stream: redacted first, then shortened."""
        return self._redact(text)[:200]

    def _stream_error(self, data: dict[str, Any]) -> APIStatusError:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        assert isinstance(error, dict)
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = self._redact(str(error.get("message") or "error event in the response stream"))
        request_id = data.get("request_id") if isinstance(data.get("request_id"), str) else None
        cls = status_error_class(200, error_type)
        return cls(
            message,
            status_code=200,
            error_type=error_type,
            request_id=request_id or self.request_id,
        )

    def _on_message_start(self, data: dict[str, Any]) -> None:
        message = dict(data["message"])
        message.setdefault("content", [])
        for index, block in enumerate(message["content"]):
            self._blocks[index] = dict(block)
        self._message = message

    def _require_message(self) -> dict[str, Any]:
        if self._message is None:
            raise ModelResponseError("stream event before message_start" + self._rid())
        return self._message

    def _on_content_block_start(self, data: dict[str, Any]) -> None:
        self._require_message()
        index = int(data["index"])
        block = dict(data["content_block"])
        if block.get("type") in _JSON_INPUT_BLOCKS:
            self._partial_json[index] = []
        self._blocks[index] = block

    def _on_content_block_delta(self, data: dict[str, Any]) -> str | None:
        index = int(data["index"])
        block = self._blocks.get(index)
        if block is None:
            raise ModelResponseError(
                f"content_block_delta for block {index}, which never started" + self._rid()
            )
        delta = data["delta"]
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta["text"])
            block["text"] = str(block.get("text", "")) + text
            return text
        if kind == "input_json_delta":
            self._partial_json.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking", "")) + str(delta["thinking"])
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
        elif kind == "compaction_delta":  # the whole summary, in one delta as a rule
            content = delta.get("content")
            if content is not None:
                block["content"] = str(block.get("content") or "") + str(content)
            if delta.get("encrypted_content") is not None:
                block["encrypted_content"] = delta["encrypted_content"]
        return None

    def _on_content_block_stop(self, data: dict[str, Any]) -> None:
        index = int(data["index"])
        parts = self._partial_json.pop(index, None)
        raw = "".join(parts) if parts is not None else ""
        if raw.strip():  # no input deltas: keep the block's own input ({} usually)
            try:
                parsed = json.loads(raw)
            except ValueError:
                # Cut off by max_tokens, or garbage: only message_delta's stop
                # reason tells which, so decide in response(). The block is
                # not handed out as complete (its input is not).
                self._cut_inputs[index] = raw
                return
            self._blocks[index]["input"] = parsed
        self._completed.append(self._blocks[index])

    def pop_completed(self) -> list[dict[str, Any]]:
        """The blocks completed since the last call, in order (each returned once)."""
        done, self._completed = self._completed, []
        return done

    def _on_message_delta(self, data: dict[str, Any]) -> None:
        message = self._require_message()
        delta = data.get("delta") or {}
        for key, value in delta.items():
            if key == "container" and value is None:
                continue
            message[key] = value
        if data.get("context_management") is not None:  # the applied context edits
            message["context_management"] = data["context_management"]
        usage = data.get("usage")
        if isinstance(usage, dict):
            merged = dict(message.get("usage") or {})
            merged.update({k: v for k, v in usage.items() if v is not None})
            message["usage"] = merged

    def _on_message_stop(self, data: dict[str, Any]) -> None:
        del data
        self._require_message()
        self.done = True
