"""The hosted backend's upload index, and the locks that make one upload per content.

The index (``anthropic-skills.json``) remembers, per API base URL, which
custom skill and version hold each local skill's content (by
:attr:`~conjure_async.skills.Skill.content_hash`). Sessions in many tasks and
many processes may share it, so:

* deciding whether to upload a content and uploading it happen under a lock
  *per content hash*: an :class:`anyio.Lock` for the tasks of this process,
  and an exclusive ``flock`` on ``<index dir>/anthropic-skills.locks/<hash>.lock``
  for other processes (polled without blocking, so waiting stays cancellable).
  The second session to arrive waits, re-reads the index and reuses the
  upload the first one made;
* every change to the index is a read-modify-write under an exclusive
  ``flock`` on ``<index>.lock`` (held for milliseconds), written to a
  temporary file and renamed, so no update is lost and no reader sees half
  a file.

Where ``fcntl`` does not exist (Windows) only the in-process locks apply.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    _HAVE_FLOCK = False
else:
    _HAVE_FLOCK = True

__all__ = ["UploadIndex"]

_INDEX_VERSION = 1
_POLL_FIRST = 0.01
_POLL_MAX = 0.25

_task_locks: dict[tuple[str, str], tuple[anyio.Lock, int]] = {}
"""(lock file, content) -> (lock, users): the in-process half of a content lock."""


class UploadIndex:
    """The entries of one API base URL in one index file, with their locks.

    Args:
        path: The index file.
        base_url: The API the entries belong to.
    """

    def __init__(self, path: Path, base_url: str) -> None:
        self.path = path
        self.base_url = base_url

    @property
    def lock_dir(self) -> Path:
        """Where the per-content lock files live (next to the index)."""
        return self.path.with_name(f"{self.path.stem}.locks")

    async def entries(self) -> dict[str, Any]:
        """The current entries of :attr:`base_url` (read fresh from disk)."""
        data = await anyio.to_thread.run_sync(_read, self.path)
        entries: dict[str, Any] = data["apis"].get(self.base_url, {})
        return entries

    async def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to the entries of :attr:`base_url` and save, atomically.

        The file is re-read under the index lock, so changes made meanwhile by
        other sessions (and processes) are kept.
        """
        await anyio.to_thread.run_sync(self._update, change)

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f"{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if _HAVE_FLOCK:
                fcntl.flock(fd, fcntl.LOCK_EX)  # held for one read and one write
            data = _read(self.path)
            change(data["apis"].setdefault(self.base_url, {}))
            _write(self.path, data)
        finally:
            os.close(fd)  # releases the lock

    @asynccontextmanager
    async def content_lock(self, content: str) -> AsyncIterator[None]:
        """Hold the lock of one content (a hash), across tasks and processes."""
        lock_file = self.lock_dir / f"{_safe(content)}.lock"
        async with _task_lock((str(lock_file), self.base_url)):
            fd = await anyio.to_thread.run_sync(_open_lock, lock_file)
            try:
                await _flock(fd)
                yield
            finally:
                os.close(fd)  # releases the lock


@asynccontextmanager
async def _task_lock(key: tuple[str, str]) -> AsyncIterator[None]:
    """One :class:`anyio.Lock` per key while anyone uses it (then forgotten)."""
    lock, users = _task_locks.get(key, (None, 0))
    if lock is None:
        lock = anyio.Lock()
    _task_locks[key] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _task_locks[key]
        if users <= 1:
            del _task_locks[key]
        else:
            _task_locks[key] = (lock, users - 1)


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


async def _flock(fd: int) -> None:
    """Take an exclusive ``flock`` on ``fd``, polling so that cancellation can end the wait."""
    if not _HAVE_FLOCK:  # pragma: no cover - Windows: in-process locking only
        return
    delay = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        else:
            return


def _safe(content: str) -> str:
    """A file name for a content hash (hex already; anything else is made safe)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in content)
    return cleaned[:128] or "empty"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": _INDEX_VERSION, "apis": {}}
    if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
        return {"version": _INDEX_VERSION, "apis": {}}
    if not isinstance(data.get("apis"), dict):
        data["apis"] = {}
    for url, entries in list(data["apis"].items()):
        if not isinstance(entries, dict):
            del data["apis"][url]
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        partial.replace(path)
    finally:
        with suppress(FileNotFoundError):
            partial.unlink()
