"""A PostgreSQL server for the store tests: found, or started by us (and then stopped by us).

Order of attempts:

1. ``CONJURE_TEST_POSTGRES_DSN``: used when it answers.
2. Otherwise a private server: the binaries of Debian's ``postgresql``
   package (installed with apt-get when missing and we are root), a data
   directory of its own in a temporary directory, a free port on 127.0.0.1,
   trust authentication for local connections only. As root it runs as the
   ``postgres`` user (PostgreSQL refuses to run as root). ``pg_ctl stop``
   stops it at the end and its directory is removed.

When none of it works the tests skip with the reason, except under ``CI=true``
where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

from tests.support.system import ensure_packages

__all__ = ["Postgres", "find_or_start_postgres", "stop_postgres"]


@dataclass
class Postgres:
    """A reachable server; ``datadir`` is set when we started it."""

    dsn: str
    datadir: Path | None = None
    pg_ctl: str | None = None
    user: str | None = None
    tmpdir: Path | None = None


def _answers(dsn: str) -> str | None:
    """None when the server answers; else why not."""

    async def ping() -> None:
        import asyncpg

        connection = await asyncpg.connect(dsn, timeout=5)
        await connection.close()

    try:
        anyio.run(ping)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _bindir() -> Path | None:
    for candidate in (shutil.which("pg_ctl"), shutil.which("initdb")):
        if candidate:
            return Path(candidate).resolve().parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def find_or_start_postgres() -> Postgres | str:
    """A reachable server, or the reason why none can be had."""
    dsn = os.environ.get("CONJURE_TEST_POSTGRES_DSN")
    if dsn:
        problem = _answers(dsn)
        if problem is None:
            return Postgres(dsn=dsn)
        return f"CONJURE_TEST_POSTGRES_DSN does not answer: {problem}"
    bindir = _bindir()
    if bindir is None:
        ensure_packages("pg_ctlcluster", "postgresql")  # Debian's server package (as root)
        bindir = _bindir()
    if bindir is None:
        return "no PostgreSQL binaries, and apt-get install postgresql was not possible"
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run the server as"
        user = "postgres"
    tmp = Path(tempfile.mkdtemp(prefix="cj-postgres-", dir="/tmp"))
    datadir, logfile = tmp / "data", tmp / "server.log"
    if user:
        shutil.chown(tmp, user=user)
    port = _free_port()
    initdb = _as(
        user,
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    )
    done = subprocess.run(initdb, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"initdb failed: {done.stderr[-1500:]}"
    pg_ctl = str(bindir / "pg_ctl")
    options = f"-p {port} -h 127.0.0.1 -k {tmp} -c fsync=off -c max_connections=50"
    start = _as(
        user,
        [pg_ctl, "-D", str(datadir), "-l", str(logfile), "-o", options, "-w", "-t", "60", "start"],
    )
    done = subprocess.run(start, capture_output=True, text=True, timeout=90, check=False)
    server = Postgres(
        dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        datadir=datadir,
        pg_ctl=pg_ctl,
        user=user,
        tmpdir=tmp,
    )
    if done.returncode != 0:
        log = logfile.read_text(errors="replace")[-1500:] if logfile.exists() else done.stderr
        stop_postgres(server)
        return f"pg_ctl start failed: {log}"
    return server


def stop_postgres(server: Postgres) -> None:
    """Stop the server we started (never one we found) and remove its directory."""
    if server.datadir is None or server.pg_ctl is None:
        return
    with contextlib.suppress(Exception):
        subprocess.run(
            _as(
                server.user, [server.pg_ctl, "-D", str(server.datadir), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
    if server.tmpdir is not None:
        shutil.rmtree(server.tmpdir, ignore_errors=True)
