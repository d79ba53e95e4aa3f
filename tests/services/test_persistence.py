"""The web examples as real processes: a restart keeps every conversation, workers share them.

Each service runs as its own process (``python -m examples...`` or
``uvicorn --workers 2``) on a SQLite file of the test's, with the offline
demo model (real Local-backend tools); it is stopped with SIGTERM, as a
process manager would, and every request goes over real HTTP.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process

from tests.services.support import FRAMEWORKS, Framework

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running(argv: list[str], port: int, db: Path) -> AsyncIterator[str]:
    """Run a service process until the block ends (then SIGTERM, and wait); yield its URL."""
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["CONJURE_STORE"] = str(db)
    process: Process = await anyio.open_process(argv, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=5) as client:
            with anyio.fail_after(60):
                while True:
                    if process.returncode is not None:
                        raise RuntimeError(f"{argv} exited with {process.returncode}")
                    try:
                        if (await client.get("/model")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await anyio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            await process.wait()
        await process.aclose()


def service(framework: Framework, port: int) -> list[str]:
    return [sys.executable, "-m", f"examples.{framework}_service", "--port", str(port)]


async def say(url: str, conversation: str, text: str, tenant: str = "acme") -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:  # a new connection
        return await client.post(
            f"/conversations/{conversation}/messages",
            json={"text": text},
            headers={"X-Tenant": tenant},
        )


async def user_texts(url: str, conversation: str, tenant: str = "acme") -> list[str]:
    """The user's messages of a conversation, as the service has them."""
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.get(
            f"/conversations/{conversation}/messages", headers={"X-Tenant": tenant}
        )
    assert response.status_code == 200, response.text
    texts = []
    for message in response.json()["messages"]:
        content: Any = message["content"]
        if message["role"] != "user":
            continue
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(b["text"] for b in content if b.get("type") == "text")
    return texts


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_restarted_service_keeps_every_conversation(
    framework: Framework, tmp_path: Path
) -> None:
    """Two conversations, a restart (SIGTERM, start again), and both go on where they were."""
    db, port = tmp_path / "conversations.db", _free_port()
    async with running(service(framework, port), port, db) as url:
        for conversation, text in (("c1", "first"), ("c2", "other"), ("c1", "second")):
            assert (await say(url, conversation, text)).status_code == 200
        before = {c: await user_texts(url, c) for c in ("c1", "c2")}
    assert before == {"c1": ["first", "second"], "c2": ["other"]}

    port = _free_port()
    async with running(service(framework, port), port, db) as url:
        assert {c: await user_texts(url, c) for c in ("c1", "c2")} == before
        reply = await say(url, "c1", "third")
        assert reply.status_code == 200
        assert "You said: third" in reply.json()["text"]
        assert await user_texts(url, "c1") == ["first", "second", "third"]
        assert await user_texts(url, "c1", tenant="other") == []  # tenants stay apart


async def test_two_uvicorn_workers_serve_one_conversation_in_alternation(tmp_path: Path) -> None:
    """``uvicorn --workers 2`` on one SQLite file: both workers serve turns of one conversation."""
    db, port = tmp_path / "conversations.db", _free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "examples.fastapi_service.app:app_from_env",
        "--workers",
        "2",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    sent: list[str] = []
    workers: list[str] = []
    async with running(argv, port, db) as url:
        for n in range(40):  # the kernel picks the worker of each new connection
            text = f"message {n}"
            response = await say(url, "c1", text)
            assert response.status_code == 200, response.text
            sent.append(text)
            workers.append(response.headers["x-served-by"])
            switched = any(a != b for a, b in itertools.pairwise(workers))
            if len(set(workers)) == 2 and switched and len(sent) >= 4:
                break
        history = await user_texts(url, "c1")
    assert len(set(workers)) == 2, f"one worker served every request: {workers}"
    assert history == sent  # every turn, in order, whichever worker served it


async def test_two_aiohttp_processes_on_one_file_take_turns(tmp_path: Path) -> None:
    """Two aiohttp service processes on one SQLite file continue each other's conversation."""
    db = tmp_path / "conversations.db"
    port_a, port_b = _free_port(), _free_port()
    async with (
        running(service("aiohttp", port_a), port_a, db) as a,
        running(service("aiohttp", port_b), port_b, db) as b,
    ):
        served = []
        for n, url in enumerate([a, b, a, b]):
            response = await say(url, "c1", f"message {n}")
            assert response.status_code == 200, response.text
            served.append(response.headers["x-served-by"])
        assert len(set(served)) == 2
        expected = [f"message {n}" for n in range(4)]
        assert await user_texts(a, "c1") == expected
        assert await user_texts(b, "c1") == expected
