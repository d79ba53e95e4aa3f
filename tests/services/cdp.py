"""Headless Chromium driven over the DevTools protocol (no Playwright, no npm).

:func:`chromium_page` starts ``/usr/bin/chromium --headless`` in a process
group of its own with a fresh profile, connects to its first page over a
websocket (aiohttp's client) and yields a :class:`Page`; on exit the whole
process group is killed and reaped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx2

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CDPError(Exception):
    """The browser answered a command with an error, or the page threw."""


class Page:
    """One browser tab: send commands, evaluate JavaScript, collect page errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command; return its result (events met meanwhile are kept)."""
        command_id = next(self._ids)
        await self._ws.send_json({"id": command_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("id") == command_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll until ``expression`` is truthy in the page; return its value."""
        with anyio.fail_after(timeout):
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 - DOM polling
                await anyio.sleep(0.05)
        return value

    def page_errors(self) -> list[str]:
        """Uncaught exceptions and console errors seen so far."""
        errors = [
            json.dumps(e["params"]["exceptionDetails"])
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]
        errors += [
            json.dumps(e["params"]["args"])
            for e in self.events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"
        ]
        return errors


@asynccontextmanager
async def chromium_page(binary: str, profile: Path) -> AsyncIterator[Page]:
    """Start headless Chromium with an empty profile in ``profile``; yield its first tab."""
    profile.mkdir(parents=True, exist_ok=True)
    process = await anyio.open_process(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port = await _devtools_port(profile / "DevToolsActivePort", process)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            targets = (await http.get("/json/list")).json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(ws_url, max_msg_size=0) as ws,
        ):
            page = Page(ws)
            await page.send("Runtime.enable")
            await page.send("Page.enable")
            yield page
    finally:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with anyio.move_on_after(10):
                await process.wait()
            await process.aclose()


async def _devtools_port(path: Path, process: anyio.abc.Process) -> int:
    """Chromium writes its DevTools port into the profile once it listens."""
    with anyio.fail_after(30):
        while True:
            if process.returncode is not None:
                raise CDPError(f"chromium exited with {process.returncode} before listening")
            with contextlib.suppress(FileNotFoundError):
                text = await anyio.Path(path).read_text()
                first_line, newline, _ = text.partition("\n")
                if newline and first_line.isdigit():  # written completely
                    return int(first_line)
            await anyio.sleep(0.02)
