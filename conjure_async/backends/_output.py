"""Bounded capture of tool output: head and tail kept, the middle counted.

Shared by the backends that run commands (Local, Docker), so a tool printing
gigabytes costs constant memory: the capture keeps at most ``limit``
characters, and streaming stops forwarding chunks once the head is full.
"""

from __future__ import annotations

import codecs
from collections import deque

__all__ = ["OutputCapture"]


class OutputCapture:
    """Keeps the first and last ``limit // 2`` characters of a stream of text."""

    __slots__ = ("_decoder", "_head", "_head_size", "_tail", "_tail_size", "limit", "total")

    def __init__(self, limit: int = 30_000) -> None:
        if limit < 2:
            raise ValueError("limit must be at least 2 characters")
        self.limit = limit
        self.total = 0
        self._head: list[str] = []
        self._head_size = 0
        self._tail: deque[str] = deque()
        self._tail_size = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed_bytes(self, data: bytes, *, final: bool = False) -> str:
        """Decode ``data`` (UTF-8, invalid bytes replaced) and add it.

        Returns what :meth:`add` returns: the part that fits in the head.
        """
        return self.add(self._decoder.decode(data, final))

    def add(self, text: str) -> str:
        """Add ``text``; return the part of it that still fits in the head.

        Callers stream what this returns, so forwarded output is bounded too.
        """
        if not text:
            return ""
        self.total += len(text)
        room = self.limit // 2 - self._head_size
        forwarded = ""
        if room > 0:
            forwarded = text[:room]
            self._head.append(forwarded)
            self._head_size += len(forwarded)
            text = text[room:]
        if text:
            self._tail.append(text)
            self._tail_size += len(text)
            keep = self.limit - self.limit // 2
            while self._tail_size - len(self._tail[0]) >= keep:
                self._tail_size -= len(self._tail.popleft())
        return forwarded

    @property
    def truncated(self) -> bool:
        """Whether some of the middle was dropped."""
        return self.total > self.limit

    def text(self) -> str:
        """The captured output, with a marker where the middle was cut."""
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self.truncated:
            return head + tail
        keep = self.limit - self.limit // 2
        tail = tail[-keep:]
        cut = self.total - len(head) - len(tail)
        return f"{head}\n[... {cut} characters cut ...]\n{tail}"
