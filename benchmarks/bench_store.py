"""Saving a bound session: time and bytes per save as the conversation grows.

A session bound to a store saves after every tool result and every turn.
This benchmark puts a history of N messages (a user message, then pairs of
an assistant ``tool_use`` and a user ``tool_result`` of a few KB) into a
real session bound to each store, saves it once, then times the saves that
follow one more tool call each (two messages more per save), two ways in
alternating rounds:

* the baseline: ``store.save`` of the whole state (``Session.dump_state``),
  what every save wrote before ADR 0019;
* the session's own binding (``Session(..., store=, conversation_id=)``),
  which appends only the new messages (``SessionStore.append``).

Figures per store, way and size, medians over the rounds:

* **time per save** (wall time of the binding's save);
* **JSON bytes per save**: the JSON text the store was handed to write;
* **disk bytes per save**: for SQLite the bytes this process passed to
  ``write()`` (``/proc/self/io``: the WAL pages), for PostgreSQL the WAL the
  server generated (``pg_current_wal_insert_lsn`` before and after);
  nothing for the memory store.

PostgreSQL is measured when a server can be had (``CONJURE_TEST_POSTGRES_DSN``,
or a private one started from Debian's binaries as the store tests do);
otherwise the section says so.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conjure_async import Session
from conjure_async._persist import dump_session
from conjure_async.backends import NativeBackend
from conjure_async.messages import Message
from conjure_async.store import MemoryStore, SessionStore, SQLiteStore
from conjure_async.testing import ScriptedModel


@dataclass(frozen=True)
class Config:
    """What to measure."""

    sizes: tuple[int, ...] = (10, 100, 1000)
    """Messages in the history before the timed saves."""
    result_chars: int = 2000
    """Characters per tool result."""
    rounds: int = 7
    """Timed saves per size (one tool call, two messages, each)."""
    stores: tuple[str, ...] = ("memory", "sqlite", "postgres")


FULL = Config()
QUICK = Config(rounds=3)


WHOLE = "whole state (`save`, the baseline)"
APPENDED = "new messages (`append`, the session's way)"


@dataclass
class Row:
    """One store at one size."""

    store: str
    way: str
    """:data:`WHOLE` or :data:`APPENDED`."""
    messages: int
    seconds: float
    json_bytes: int
    disk_bytes: int | None


async def echo(text: str) -> str:
    """Echo the text."""
    return text


def _call(i: int, result_chars: int) -> list[Message]:
    """One tool call's two messages: the model's tool_use and its result."""
    # Hex of seeded random bytes: tool output that compresses about as well as real logs
    # do (a run of one letter would be squeezed to nothing by PostgreSQL's TOAST).
    body = random.Random(i).randbytes(result_chars // 2).hex()
    return [
        Message.model_validate(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Looking at item {i}."},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{i:06d}",
                        "name": "echo",
                        "input": {"text": f"item {i}"},
                    },
                ],
            }
        ),
        Message.model_validate(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{i:06d}", "content": body}
                ],
            }
        ),
    ]


def _history(n: int, result_chars: int) -> list[Message]:
    messages = [Message.model_validate({"role": "user", "content": "Check every item."})]
    i = 0
    while len(messages) < n:
        messages += _call(i, result_chars)
        i += 1
    return messages[:n]


@contextmanager
def _counting_json() -> Iterator[list[int]]:
    """Count the JSON text the stores encode (every store module's ``encode_state``)."""
    import importlib

    names = ("_base", "_memory", "_sqlite", "_postgres", "_log")
    modules: list[Any] = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"conjure_async.store.{name}"))
        except ImportError:
            continue
    counted = [0]
    originals: list[tuple[Any, Callable[..., str]]] = []
    for module in modules:
        original = getattr(module, "encode_state", None)
        if original is None:
            continue

        def counting(state: Any, _original: Callable[..., str] = original) -> str:
            text = _original(state)
            counted[0] += len(text.encode())
            return text

        originals.append((module, original))
        module.encode_state = counting
    try:
        yield counted
    finally:
        for module, original in originals:
            module.encode_state = original


def _wchar() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _Disk:
    """Bytes written on the store's side: WAL pages (SQLite) or server WAL (PostgreSQL)."""

    def __init__(self, kind: str, dsn: str | None) -> None:
        self.kind = kind
        self.dsn = dsn
        self._connection: Any = None

    async def __aenter__(self) -> _Disk:
        if self.kind == "postgres":
            import asyncpg

            self._connection = await asyncpg.connect(self.dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def mark(self) -> int | None:
        if self.kind == "sqlite":
            return _wchar()
        if self.kind == "postgres":
            lsn = await self._connection.fetchval(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')"
            )
            return int(lsn)
        return None


@asynccontextmanager
async def _store(kind: str, dsn: str | None, directory: Path) -> AsyncIterator[SessionStore]:
    if kind == "memory":
        async with MemoryStore() as store:
            yield store
    elif kind == "sqlite":
        async with SQLiteStore(directory / "bench.db") as sqlite:
            yield sqlite
    else:
        from conjure_async.store import PostgresStore

        async with PostgresStore(dsn, table="bench_store") as postgres:
            yield postgres
        import asyncpg

        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("DROP TABLE IF EXISTS bench_store")
            await connection.execute("DROP TABLE IF EXISTS bench_store_messages")
        finally:
            await connection.close()


async def measure(kind: str, config: Config, dsn: str | None, directory: Path) -> list[Row]:
    """Every size on one store: a row per way of saving."""
    rows: list[Row] = []
    async with _store(kind, dsn, directory) as store, _Disk(kind, dsn) as disk:
        for n in config.sizes:
            rows += await _measure_size(kind, store, disk, n, config)
    return rows


async def _measure_size(
    kind: str, store: SessionStore, disk: _Disk, n: int, config: Config
) -> list[Row]:
    """One size on one store: both ways, in alternating rounds."""
    model = ScriptedModel([])
    async with Session(
        NativeBackend(echo), model=model, store=store, conversation_id=f"bench-{n}"
    ) as session:
        binding: Any = session._binding
        engine: Any = session._engine
        engine._history = _history(n, config.result_chars)
        whole_id = f"bench-{n}-whole"
        whole_version = await store.save(whole_id, dump_session(session), version=0)
        await binding.save(session)  # the conversation so far, saved once

        async def whole() -> None:
            nonlocal whole_version
            whole_version = await store.save(whole_id, dump_session(session), version=whole_version)

        async def appended() -> None:
            await binding.save(session)

        figures: dict[str, tuple[list[float], list[int], list[int]]] = {
            WHOLE: ([], [], []),
            APPENDED: ([], [], []),
        }
        for r in range(config.rounds):
            engine._history.extend(_call(10_000 + r, config.result_chars))
            for way, save in ((WHOLE, whole), (APPENDED, appended)):
                seconds, json_bytes, disk_bytes = figures[way]
                before = await disk.mark()
                with _counting_json() as counted:
                    started = time.perf_counter()
                    await save()
                    seconds.append(time.perf_counter() - started)
                after = await disk.mark()
                json_bytes.append(counted[0])
                if before is not None and after is not None:
                    disk_bytes.append(after - before)
    return [
        Row(
            kind,
            way,
            n,
            statistics.median(seconds),
            int(statistics.median(json_bytes)),
            int(statistics.median(disk_bytes)) if disk_bytes else None,
        )
        for way, (seconds, json_bytes, disk_bytes) in figures.items()
    ]


def _postgres() -> tuple[str | None, Any, str]:
    """A server's DSN, the handle to stop it, and what happened."""
    try:
        import asyncpg  # noqa: F401 - only checks the extra is installed

        from tests.store.postgres import find_or_start_postgres
    except ImportError as exc:
        return None, None, f"not measured: {exc}"
    found = find_or_start_postgres()
    if isinstance(found, str):
        return None, None, f"not measured: no PostgreSQL server ({found[:200]})"
    return found.dsn, found, ""


def _size(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f} MB"
    if n >= 1_000:
        return f"{n / 1_000:.1f} KB"
    return f"{n:.0f} B"


async def run(quick: bool = False, *, config: Config | None = None) -> list[str]:
    """Measure; return the markdown section."""
    config = config or (QUICK if quick else FULL)
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cj-bench-store-") as tmp:
        for kind in config.stores:
            if kind != "postgres":
                rows += await measure(kind, config, None, Path(tmp))
                continue
            dsn, server, why = _postgres()
            if dsn is None:
                notes.append(f"- PostgreSQL {why}")
                continue
            try:
                rows += await measure(kind, config, dsn, Path(tmp))
            finally:
                from tests.store.postgres import stop_postgres

                stop_postgres(server)
    lines = [
        (
            f"A session bound to each store, its history at N messages (tool results of "
            f"{config.result_chars:,} characters), then one tool call (two messages) per save; "
            f"medians of {config.rounds} saves each way, alternating: the whole state "
            "(`store.save(id, session.dump_state(), ...)`, the baseline) and the session's own "
            "binding, which appends only the new messages (ADR 0019). *JSON* is the "
            "text handed to the store; *disk* is what SQLite wrote (WAL pages, from "
            "`/proc/self/io`) or the WAL PostgreSQL generated."
        ),
        "",
        "| store | saves | messages | time per save | JSON per save | disk per save |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        disk = "-" if row.disk_bytes is None else _size(row.disk_bytes)
        lines.append(
            f"| {row.store} | {row.way} | {row.messages:,} | {row.seconds * 1000:.2f} ms | "
            f"{_size(row.json_bytes)} | {disk} |"
        )
    lines.append("")
    for kind in dict.fromkeys(r.store for r in rows):
        for way in (WHOLE, APPENDED):
            mine = [r for r in rows if r.store == kind and r.way == way]
            if len(mine) >= 2 and mine[0].json_bytes:
                first, last = mine[0], mine[-1]
                lines.append(
                    f"- {kind}, {way.split(' (')[0]}: from {first.messages:,} to "
                    f"{last.messages:,} messages a save writes "
                    f"{last.json_bytes / first.json_bytes:.1f}x the JSON and takes "
                    f"{last.seconds / first.seconds:.1f}x the time."
                )
        largest = [r for r in rows if r.store == kind and r.messages == rows[-1].messages]
        if len(largest) == 2:
            base, new = largest
            lines.append(
                f"- {kind} at {new.messages:,} messages: appending takes "
                f"{new.seconds / base.seconds:.3f}x the time of a whole save and writes "
                f"{new.json_bytes / base.json_bytes:.3f}x its JSON."
            )
    lines += notes
    lines.append("")
    return lines


if __name__ == "__main__":
    import sys

    import anyio

    print("\n".join(anyio.run(run, "--quick" in sys.argv)))
