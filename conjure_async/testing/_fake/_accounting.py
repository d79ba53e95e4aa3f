"""The fake API's accounting: tokens, and the prompt cache as the API documents it.

Tokens: every block of a request (a tool definition, a system block, a
message's content block; string content is one text block) counts one token
per :data:`BYTES_PER_TOKEN` bytes of its JSON, rounded up. ``cache_control``
does not count, and does not change the block's identity.

The prompt cache follows the documented rules: the prefix is rendered tools
→ system → messages; each breakpoint (a block with ``cache_control``, or the
last cacheable block for a top-level ``cache_control``) writes an entry for
the prefix up to it, if that prefix has at least the model's minimum
cacheable length; a breakpoint reads the longest entry an earlier request
wrote at an identical prefix ending at most 20 blocks before it. Reads are
billed up to the highest hit, 1-hour writes from there to the last 1-hour
breakpoint, 5-minute writes from there to the last breakpoint; a hit
refreshes its entry's lifetime. At most 4 breakpoints, every 1-hour one
before any 5-minute one, none on a thinking block or empty text (each a 400).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from conjure_async.testing._fake._http import HTTPError

__all__ = [
    "BYTES_PER_TOKEN",
    "CacheUsage",
    "PromptCache",
    "Rendered",
    "block_tokens",
    "minimum_cacheable",
    "render",
]

BYTES_PER_TOKEN: Final = 4
MAX_BREAKPOINTS: Final = 4
LOOKBACK: Final = 20
"""Blocks a breakpoint looks back for an entry an earlier request wrote."""
TTL_SECONDS: Final = {"5m": 300.0, "1h": 3600.0}

_MINIMUMS: Final = (
    ("claude-opus-5", 512),
    ("claude-fable-5", 512),
    ("claude-mythos-5", 512),
    ("claude-mythos-preview", 2048),
    ("claude-opus-4-8", 1024),
    ("claude-opus-4-7", 2048),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
)
"""Minimum cacheable prompt lengths (tokens) by model prefix; others: 1,024."""
_DEFAULT_MINIMUM: Final = 1024
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def minimum_cacheable(model: str) -> int:
    """The shortest prefix (tokens) the model caches."""
    for prefix, tokens in _MINIMUMS:
        if model.startswith(prefix):
            return tokens
    return _DEFAULT_MINIMUM


def _bare(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def block_tokens(block: Any) -> int:
    """The tokens of one block: a token per 4 bytes of its JSON (``cache_control`` aside)."""
    data = _bare(block) if isinstance(block, Mapping) else block
    return max(1, -(-len(_json(data)) // BYTES_PER_TOKEN))


@dataclass(slots=True)
class Rendered:
    """A request's prompt as the cache sees it: blocks, their tokens, prefix hashes, breakpoints."""

    tokens: list[int] = field(default_factory=list)
    """Each block's tokens, in render order."""
    cumulative: list[int] = field(default_factory=list)
    """Tokens up to and including each block."""
    hashes: list[bytes] = field(default_factory=list)
    """Hash of the prefix up to and including each block."""
    breakpoints: list[tuple[int, str]] = field(default_factory=list)
    """``(block index, ttl)`` of each breakpoint, in render order."""

    @property
    def total(self) -> int:
        """The prompt's input tokens."""
        return self.cumulative[-1] if self.cumulative else 0


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def render(
    model: str,
    tools: Sequence[Mapping[str, Any]] | None,
    system: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    automatic: Any = None,
) -> Rendered:
    """Render a prompt (tools → system → messages) into blocks, tokens, hashes and breakpoints.

    ``automatic`` is a top-level ``cache_control``: a breakpoint on the last
    cacheable block.

    Raises:
        HTTPError: A breakpoint the API refuses (see the module docstring).
    """
    rendered = Rendered()
    digest = hashlib.sha256(model.encode()).digest()
    marks: list[tuple[int, Any]] = []
    markable: list[bool] = []
    total = 0

    def add(tag: bytes, block: Any) -> None:
        nonlocal digest, total
        data = _bare(block) if isinstance(block, Mapping) else block
        encoded = _json(data)
        digest = hashlib.sha256(digest + tag + encoded).digest()
        tokens = max(1, -(-len(encoded) // BYTES_PER_TOKEN))
        total += tokens
        rendered.tokens.append(tokens)
        rendered.cumulative.append(total)
        rendered.hashes.append(digest)
        kind = block.get("type") if isinstance(block, Mapping) else None
        ok = kind not in _UNMARKABLE and not (kind == "text" and not block.get("text"))
        markable.append(ok)
        if isinstance(block, Mapping) and block.get("cache_control") is not None:
            if not ok:
                raise HTTPError(400, f"cache_control cannot be set on an empty or {kind} block")
            marks.append((len(rendered.tokens) - 1, block["cache_control"]))

    for tool in tools or ():
        add(b"T", tool)
    for block in _blocks(system):
        add(b"S", block)
    for message in messages:
        role = str(message.get("role", ""))
        digest = hashlib.sha256(digest + b"M" + role.encode()).digest()
        for block in _blocks(message.get("content")):
            add(b"B", block)
    if automatic is not None:
        for index in range(len(markable) - 1, -1, -1):
            if markable[index]:
                if all(index != at for at, _ in marks):
                    marks.append((index, automatic))
                break
        marks.sort(key=lambda mark: mark[0])
    if len(marks) > MAX_BREAKPOINTS:
        raise HTTPError(
            400,
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(marks)}.",
        )
    seen_5m = False
    for index, control in marks:
        ttl = control.get("ttl", "5m") if isinstance(control, Mapping) else None
        if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
            raise HTTPError(400, "cache_control.type: Input should be 'ephemeral'")
        if ttl not in TTL_SECONDS:
            raise HTTPError(400, f"cache_control.ttl: Input should be '5m' or '1h', not {ttl!r}")
        if ttl == "1h" and seen_5m:
            raise HTTPError(
                400, "a ttl='1h' cache_control block must not come after a ttl='5m' block"
            )
        seen_5m = seen_5m or ttl == "5m"
        rendered.breakpoints.append((index, ttl))
    return rendered


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """What one request read from and wrote to the cache (tokens)."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        """Tokens written, both lifetimes."""
        return self.write_5m + self.write_1h


class PromptCache:
    """The prompt cache of one fake server: prefix hash → (expiry, lifetime).

    Args:
        clock: Seconds, monotonic (the server's clock, which tests may advance).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[bytes, tuple[float, float]] = {}

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for expires, _ in self._entries.values() if expires > now)

    def account(self, rendered: Rendered, minimum: int) -> CacheUsage:
        """Read and write ``rendered``'s breakpoints; return the tokens read and written."""
        now = self._clock()
        if len(self._entries) > 4096:
            self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
        hit = -1
        for index, _ttl in rendered.breakpoints:
            for position in range(index, max(index - LOOKBACK, -1), -1):
                entry = self._entries.get(rendered.hashes[position])
                if entry is not None and entry[0] > now:
                    hit = max(hit, position)
                    break
        read = rendered.cumulative[hit] if hit >= 0 else 0
        if hit >= 0:
            lifetime = self._entries[rendered.hashes[hit]][1]
            self._entries[rendered.hashes[hit]] = (now + lifetime, lifetime)
        done = read
        write_5m = write_1h = 0
        for index, ttl in rendered.breakpoints:
            if index <= hit or rendered.cumulative[index] < minimum:
                continue
            lifetime = TTL_SECONDS[ttl]
            tokens = rendered.cumulative[index] - done
            if ttl == "1h":
                write_1h += tokens
            else:
                write_5m += tokens
            done = rendered.cumulative[index]
            self._entries[rendered.hashes[index]] = (now + lifetime, lifetime)
        return CacheUsage(read=read, write_5m=write_5m, write_1h=write_1h)
