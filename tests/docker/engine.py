"""A Docker engine for the Docker tests: found, or started by us (and then stopped by us).

Order of attempts:

1. ``DOCKER_HOST``, or ``/var/run/docker.sock``: used when it answers a ping.
2. As root: install ``docker.io`` with apt-get when ``dockerd`` is missing,
   then start a private ``dockerd`` (overlay2, no bridge, no iptables) with its
   data root, exec root, pid file and socket in a temporary directory.
   Only that daemon is stopped afterwards (containers removed first), by pid.

When none of it works the tests skip with the reason, except under ``CI=true``
where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from conjure_async.backends.docker._api import (
    CREATED_BY,
    LABEL_CREATED_BY,
    LABEL_OWNER,
    docker_client,
)
from conjure_async.backends.docker._container import _owner as container_owner
from conjure_async.backends.docker._image import build_offline_image
from tests.support.system import ensure_packages, in_ci

__all__ = ["BARE_IMAGE", "TEST_IMAGE", "Engine", "find_or_start_engine", "in_ci", "stop_engine"]

TEST_IMAGE = "conjure-async-test:offline-1"
BARE_IMAGE = "conjure-async-test:bare-1"
"""Like TEST_IMAGE but without /workspace (like python:3.12-slim)."""


@dataclass
class Engine:
    """A reachable engine; ``process`` is set when we started it."""

    host: str
    image: str = TEST_IMAGE
    process: subprocess.Popen[bytes] | None = None
    tmpdir: Path | None = None
    log: list[str] = field(default_factory=list)


def _ping_unix(path: str) -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(path)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return b" 200 " in sock.recv(4096)
    return False


async def _ping_async(host: str) -> bool:
    try:
        async with docker_client(host, connect_timeout=3):
            return True
    except Exception:
        return False


def ping(host: str) -> bool:
    if host.startswith("unix://"):
        return _ping_unix(host.removeprefix("unix://"))
    return anyio.run(_ping_async, host)


def start_dockerd(
    folder: Path, host: str, answers: Callable[[], bool], *options: str
) -> subprocess.Popen[bytes] | str:
    """A private dockerd listening at ``host`` once ``answers()``, else why not (its log's tail).

    Its data, state and log (``dockerd.log``) are in ``folder``; no iptables,
    no bridge; ``options`` are added (TLS). A daemon that did not come up is stopped.
    """
    argv = [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        f"--data-root={folder / 'data'}",
        f"--exec-root={folder / 'exec'}",
        f"--pidfile={folder / 'dockerd.pid'}",
        *options,
        f"--host={host}",
    ]
    logfile = (folder / "dockerd.log").open("wb")
    process = subprocess.Popen(
        argv, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
    )
    logfile.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if answers():
            return process
        time.sleep(0.1)
    log = (folder / "dockerd.log").read_text(errors="replace")[-1500:]
    stop_process(process)
    return log


def _start_dockerd() -> Engine | str:
    tmp = Path(tempfile.mkdtemp(prefix="cj-dockerd-", dir="/tmp"))
    sock = tmp / "docker.sock"
    started = start_dockerd(tmp, f"unix://{sock}", lambda: _ping_unix(str(sock)))
    if isinstance(started, str):
        shutil.rmtree(tmp, ignore_errors=True)
        return f"dockerd did not come up: {started}"
    return Engine(host=f"unix://{sock}", process=started, tmpdir=tmp)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a daemon; SIGKILL it after 20 seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def find_or_start_engine() -> Engine | str:
    """Return a reachable engine, or the reason why none can be had."""
    tried = []
    env_host = os.environ.get("DOCKER_HOST")
    if env_host:
        if ping(env_host):
            return Engine(host=env_host)
        tried.append(f"DOCKER_HOST={env_host} does not answer")
    elif Path("/var/run/docker.sock").exists():
        if _ping_unix("/var/run/docker.sock"):
            return Engine(host="unix:///var/run/docker.sock")
        tried.append("/var/run/docker.sock does not answer")
    else:
        tried.append("no DOCKER_HOST and no /var/run/docker.sock")
    if os.geteuid() != 0:
        return "; ".join([*tried, "not root, so no private dockerd can be started"])
    if ensure_packages("dockerd", "docker.io") is None:
        return "; ".join([*tried, "dockerd is missing and apt-get install docker.io failed"])
    started = _start_dockerd()
    if isinstance(started, str):
        return "; ".join([*tried, started])
    return started


def _this_run() -> list[str]:
    """Label filters matching the containers this test process created, and no others.

    The engine may be shared with other programs (another test run, an
    application): the leak check must neither blame nor remove their containers.
    """
    return [f"{LABEL_CREATED_BY}={CREATED_BY}", f"{LABEL_OWNER}={container_owner()}"]


async def _containers(host: str) -> list[str]:
    async with docker_client(host) as client:
        found = await client.containers.list(all=True, filters={"label": _this_run()})
        return [str(c.id) for c in found]


def leftover_containers(engine: Engine) -> list[str]:
    """Ids of containers this test run created that still exist."""
    return anyio.run(_containers, engine.host)


async def _remove_all(host: str, only_ours: bool) -> None:
    async with docker_client(host) as client:
        filters = {"label": _this_run()} if only_ours else {}
        for container in await client.containers.list(all=True, filters=filters):
            with contextlib.suppress(Exception):
                await container.delete(force=True, v=True)


def remove_containers(engine: Engine, *, only_ours: bool = True) -> None:
    anyio.run(_remove_all, engine.host, only_ours)


def build_test_image(engine: Engine) -> None:
    """Build the offline test image once (kept on the engine, reused by tag)."""
    anyio.run(lambda: build_offline_image(engine.image, docker_host=engine.host, if_missing=True))


def build_bare_image(engine: Engine) -> str:
    """Build the test image without a workspace directory once; return its tag."""
    return anyio.run(
        lambda: build_offline_image(
            BARE_IMAGE, docker_host=engine.host, if_missing=True, workdir=None
        )
    )


def stop_engine(engine: Engine) -> None:
    """Stop the daemon we started (never one we found), removing its containers first."""
    if engine.process is None:
        return
    with contextlib.suppress(Exception):
        remove_containers(engine, only_ours=False)
    stop_process(engine.process)
    if engine.tmpdir is not None:
        shutil.rmtree(engine.tmpdir, ignore_errors=True)
