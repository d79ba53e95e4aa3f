"""What each session makes for itself, made cheaply: its id, chat lock and task group.

Sessions are made per conversation (often per request), so these are paid
per session; see ``docs/adr/0008-hot-path-memory.md``.
"""

from __future__ import annotations

import asyncio
import os

import anyio
from anyio.abc import TaskGroup

__all__ = ["new_id", "new_lock", "new_task_group"]


def new_id() -> str:
    """``uuid.uuid4().hex`` without building a ``UUID`` object: version 4, RFC 4122 variant."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


_lock_types: dict[type[asyncio.AbstractEventLoop], type[anyio.Lock]] = {}
"""The lock class anyio picked, per event-loop class (looking it up per session costs more
than the rest of the lock)."""


def new_lock() -> anyio.Lock:
    """``anyio.Lock(fast_acquire=True)`` (a chat lock that does not yield when free)."""
    loop = asyncio._get_running_loop()
    if loop is None:  # built outside a loop: anyio binds its lock when first used
        return anyio.Lock(fast_acquire=True)
    kind = _lock_types.get(type(loop))
    if kind is None:
        lock = anyio.Lock(fast_acquire=True)
        _lock_types[type(loop)] = type(lock)
        return lock
    return kind(fast_acquire=True)


_group_types: dict[type[asyncio.AbstractEventLoop], type[TaskGroup]] = {}


def new_task_group() -> TaskGroup:
    """``anyio.create_task_group()``, its class looked up once per event-loop class."""
    kind = _group_types.get(type(asyncio.get_running_loop()))
    if kind is None:
        group = anyio.create_task_group()
        _group_types[type(asyncio.get_running_loop())] = type(group)
        return group
    return kind()
