"""What the command line shows a person: one line per event, and progress on a terminal.

Used by ``conjure chat``, ``conjure demo`` and ``conjure docker build``; the
library itself never prints.

Progress (a spinner, what is going on, the time it has taken) appears only
when standard output and standard error are both a terminal and ``rich`` is
installed (the ``[cli]`` extra); piped or logged output stays exactly the
lines the command prints, with no escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from conjure_async.events import Event

__all__ = ["Progress", "Write", "format_event", "stdout_write"]

Write = Callable[[str], object]
"""Receives output text (lines end with ``\\n``)."""


def stdout_write(text: str) -> None:
    """Write ``text`` to standard output at once (events stream as they happen)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def format_event(event: Event) -> str | None:
    """One human line per event (``None`` for events not worth a line)."""
    match event.kind:
        case "tool_started":
            shown = event.input.get("command") or event.input.get("path") or event.input
            return f"  -> {event.name} [{event.backend}] {shown}"
        case "tool_output":
            return "\n".join(f"     | {line}" for line in event.text.rstrip("\n").splitlines())
        case "tool_finished":
            status = "error" if event.is_error else "ok"
            code = f", exit {event.exit_code}" if event.exit_code is not None else ""
            return f"  <- {event.name} {status}{code} ({event.duration_s * 1000:.0f} ms)"
        case "file_created":
            return f"  [file] {event.file.name} ({event.file.source})"
        case "paused":
            return f"  [paused by the API, continuing ({event.count})]"
        case "turn_finished":
            usage = event.reply.usage
            return (
                f"  [turn finished: {event.reply.stop_reason}, {event.reply.iterations} model "
                f"calls, {usage.input_tokens} in / {usage.output_tokens} out tokens]"
            )
        case "error":
            return f"  [error] {event.error_type}: {event.message}"
        case _:
            return None


def _both_terminals() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


class Progress:
    """Shows long work on a terminal; does nothing anywhere else.

    ::

        progress = Progress()                      # on when both streams are a terminal
        with progress.status("downloading budget.xlsx") as update:
            ...
            update("downloading budget.xlsx: almost")

    Args:
        enabled: Force progress on or off; ``None`` (default) turns it on when
            standard output and standard error are both a terminal. Without
            ``rich`` it is always off.
    """

    def __init__(self, *, enabled: bool | None = None) -> None:
        wanted = _both_terminals() if enabled is None else enabled
        self._console: Any = None
        if wanted:
            try:
                from rich.console import Console  # noqa: PLC0415 - the optional [cli] extra
            except ImportError:
                return
            self._console = Console(stderr=True)

    @property
    def enabled(self) -> bool:
        """Whether progress is shown."""
        return self._console is not None

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        """Show a spinner with ``text`` and the elapsed time while the block runs.

        Yields a function that replaces the text. The spinner is erased when
        the block ends; lines printed meanwhile stay, above it.
        """
        if self._console is None:
            yield _ignore
            return
        from rich import progress  # noqa: PLC0415 - the optional [cli] extra

        columns = (
            progress.SpinnerColumn(),
            progress.TextColumn("{task.description}"),
            progress.TimeElapsedColumn(),
        )
        with progress.Progress(*columns, console=self._console, transient=True) as bar:
            task = bar.add_task(text, total=None)
            yield lambda new: bar.update(task, description=new)


def _ignore(text: str) -> None:
    del text
