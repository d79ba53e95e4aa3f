"""Reloading a :class:`~conjure_async.skills.SkillRegistry` when its files change.

The operating system reports the changes (inotify, FSEvents, ...) through
``watchfiles``; nothing is scanned, so an edit that keeps a file's size and
modification time is seen too, and an idle watcher reads nothing. One
:class:`Watcher` serves one ``registry.watch()`` or ``watch_forever()``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from conjure_async._exceptions import SkillError

if TYPE_CHECKING:
    import watchfiles

    from conjure_async.skills._registry import SkillRegistry

__all__ = ["Watcher"]

logger = logging.getLogger("conjure_async.skills")

_IDLE_WAKE_MS = 100
"""How long watchfiles' thread waits before reporting "no change" (so the watcher
knows it is watching, and a cancellation is never held up for longer)."""


@dataclass(frozen=True, slots=True)
class _Targets:
    """What one round of watching follows: the folders given to watchfiles, and a filter.

    A skills folder is watched itself (recursively). A ``.skill`` file, or a path
    that is missing, is watched through its parent, filtered to that path: an
    editor or ``mv`` replacing the file, and the path appearing again, are seen.
    """

    folders: tuple[str, ...]
    paths: tuple[str, ...]
    identity: tuple[tuple[str, int, int], ...]
    """(folder, inode, device) of each folder: a folder replaced means watching anew."""

    @classmethod
    async def now(cls, paths: Iterable[Path]) -> _Targets:
        """The targets of ``paths`` as the file system has them now (stats in a thread)."""
        return await anyio.to_thread.run_sync(cls.of, paths)

    @classmethod
    def of(cls, paths: Iterable[Path]) -> _Targets:
        """The targets of ``paths`` as the file system has them now."""
        wanted = [path.absolute() for path in paths]
        folders = dict.fromkeys(path if path.is_dir() else path.parent for path in wanted)
        identity = []
        for folder in folders:
            with contextlib.suppress(OSError):
                st = folder.stat()
                if stat.S_ISDIR(st.st_mode):
                    identity.append((str(folder), st.st_ino, st.st_dev))
        return cls(
            tuple(folder for folder, _, _ in identity),
            tuple(str(path) for path in wanted),
            tuple(identity),
        )

    def wants(self, change: watchfiles.Change, path: str) -> bool:
        """The watch filter: watchfiles' default (no .git, caches, swap files), under a path.

        A watched folder's own deletion passes too: that watch is then dead.
        """
        return path in self.folders or (
            _default_filter()(change, path)
            and any(path == wanted or path.startswith(wanted + os.sep) for wanted in self.paths)
        )

    def lost(self, changes: Iterable[tuple[watchfiles.Change, str]], now: _Targets) -> bool:
        """Whether a watch is gone: a watched folder deleted or moved, or replaced by another.

        The folder's path in ``changes`` says it (inode numbers are reused at once, so a
        folder deleted and made again can look the same); ``now`` catches the rest.
        """
        return now.identity != self.identity or any(
            path in self.folders and change.name == "deleted" for change, path in changes
        )


@functools.cache
def _default_filter() -> watchfiles.DefaultFilter:
    import watchfiles  # noqa: PLC0415 - imported when a registry is first watched

    return watchfiles.DefaultFilter()


class Watcher:
    """Reloads a registry on file changes until stopped (one per ``watch``/``watch_forever``).

    Watching goes in rounds, each one ``watchfiles.awatch`` over the current
    targets with an ``anyio.Event`` as its stop event: :meth:`stop` ends the
    last round, :meth:`rewatch` (the registry's paths changed, or a watched
    folder was replaced) ends this one and starts the next.
    """

    def __init__(self, registry: SkillRegistry, interval: float) -> None:
        self._registry = registry
        self._debounce_ms = max(1, round(interval * 1000))
        self._stopped = False
        self._wake: anyio.Event | None = None

    def stop(self) -> None:
        """End watching (the current round returns within a few milliseconds)."""
        self._stopped = True
        self.rewatch()

    def rewatch(self) -> None:
        """End the current round; the next one watches the targets as they are now."""
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch round after round until :meth:`stop`; ``started()`` once the first watches."""

        async def started() -> None:
            task_status.started()

        watching = started
        while not self._stopped:
            await self._round(watching)
            # a change made between two rounds had no watch on it: read everything again
            watching = self._reload

    async def _round(self, watching: Callable[[], Awaitable[None]]) -> None:
        """Follow the targets as they are now until woken; ``watching()`` once the watch is on."""
        self._wake = wake = anyio.Event()
        targets = await _Targets.now(self._registry.paths)
        if not targets.folders:  # nothing to follow until the paths change
            await watching()
            await wake.wait()
            return
        announce: Callable[[], Awaitable[None]] | None = watching
        async with contextlib.aclosing(self._changes(targets, wake)) as batches:
            async for changes in batches:
                if announce is not None:
                    await announce()
                    announce = None
                if changes:
                    await self._reload()
                    if targets.lost(changes, await _Targets.now(self._registry.paths)):
                        wake.set()  # watch what is there now

    async def _reload(self) -> None:
        try:
            await self._registry.reload()
        except SkillError as exc:
            logger.warning(
                "skills changed but reloading failed; keeping the previous ones: %s", exc
            )

    def _changes(
        self, targets: _Targets, wake: anyio.Event
    ) -> AsyncGenerator[set[tuple[watchfiles.Change, str]], None]:
        import watchfiles  # noqa: PLC0415 - imported when a registry is first watched

        return watchfiles.awatch(
            *targets.folders,
            watch_filter=targets.wants,
            debounce=self._debounce_ms,
            step=min(50, self._debounce_ms),
            stop_event=wake,
            rust_timeout=_IDLE_WAKE_MS,
            yield_on_timeout=True,  # an empty set: the first one says "watching now"
        )
