"""Quiet-by-default structured logging.

The library never configures logging. Its events go:

* through structlog (``structlog.get_logger("conjure_async")``) once the
  application has configured structlog (``structlog.is_configured()``), so they
  pass the application's processors with ``session_id``/``call_id`` bound;
* otherwise to the standard library logger ``conjure_async``, rendered as
  ``event key=value ...``. With nothing configured that prints warnings and
  errors only (Python's last-resort handler), never debug chatter on stdout;
  ``logging.basicConfig(level=logging.DEBUG)`` shows everything.

Inside an OpenTelemetry span that records, every event also carries the
span's ``trace_id`` and ``span_id`` (hex, as OpenTelemetry writes them), so
logs and traces join. This is the library's own binding, not a processor
installed into the application's logging.

See ``docs/adr/0003-quiet-logging.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from opentelemetry import trace

__all__ = ["CallLogger", "Logger", "get_logger"]

_stdlib = logging.getLogger("conjure_async")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Logger:
    """A small bound logger; ``bind`` returns a new one with more context."""

    __slots__ = ("_context",)

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self._context = context or {}

    def bind(self, **context: Any) -> Logger:
        """Return a logger with ``context`` added to every event."""
        return Logger({**self._context, **context})

    @staticmethod
    def enabled(level: str) -> bool:
        """Whether an event of ``level`` goes anywhere (lets a hot path skip building it)."""
        return structlog.is_configured() or _stdlib.isEnabledFor(_LEVELS[level])

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            log = structlog.get_logger("conjure_async")
            getattr(log, level)(event, **self._context, **_span_ids(), **fields)
            return
        number = _LEVELS[level]
        if _stdlib.isEnabledFor(number):
            items = {**self._context, **_span_ids(), **fields}
            rendered = " ".join(f"{k}={v!r}" for k, v in items.items())
            _stdlib.log(number, "%s %s", event, rendered)

    def debug(self, event: str, **fields: Any) -> None:
        """Log a debug event."""
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an info event."""
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a warning event."""
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log an error event."""
        self._log("error", event, fields)


class CallLogger(Logger):
    """A tool call's logger: the session's context plus ``call_id`` and ``tool``.

    The merged context is built when first read (most calls log nothing),
    so a call costs this object, not a dict copy.
    """

    __slots__ = ("_base", "_call_id", "_merged", "_tool")

    def __init__(self, base: Logger, call_id: str, tool: str) -> None:
        self._base = base
        self._call_id = call_id
        self._tool = tool
        self._merged: dict[str, Any] | None = None

    @property
    def _context(self) -> dict[str, Any]:  # type: ignore[override]  # the base's slot, read-only

        merged = self._merged
        if merged is None:
            merged = self._merged = {
                **self._base._context,
                "call_id": self._call_id,
                "tool": self._tool,
            }
        return merged


def _span_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current recording span (none outside spans)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return {}
    context = span.get_span_context()
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def get_logger(**context: Any) -> Logger:
    """Return the library's logger with ``context`` bound."""
    return Logger(context)
