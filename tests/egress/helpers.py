"""A host-side proxy for the egress tests: the session's proxy plus a forwarder on this host."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

from conjure_async import EgressPolicy
from conjure_async._logging import get_logger
from conjure_async.egress._runtime import (
    EgressRuntime,
    forwarder_argv,
    make_folder,
    new_socket_name,
    remove_folder,
    sandbox_environment,
)


@dataclass
class HostProxy:
    """A running proxy, its folder and socket, and a forwarder on ``127.0.0.1:port``."""

    runtime: EgressRuntime
    folder: Path
    socket: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)

    async def curl(self, *args: str) -> tuple[int, str, str]:
        """Run curl through the proxy; return (exit code, stdout, stderr)."""
        result = await anyio.run_process(
            ["curl", "-sS", "--max-time", "30", *args], env=self.env, check=False
        )
        return result.returncode, result.stdout.decode(), result.stderr.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, process: Process) -> None:
    """Wait until something accepts on 127.0.0.1:port (the forwarder started)."""
    with anyio.fail_after(20):
        while True:
            assert process.returncode is None, "the forwarder exited"
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.02)
                continue
            await stream.aclose()
            return


@contextlib.asynccontextmanager
async def host_proxy(policy: EgressPolicy) -> AsyncIterator[HostProxy]:
    """Run ``policy``'s proxy in this event loop with a forwarder process on this host."""
    runtime = EgressRuntime(policy, logger=get_logger(component="test"))
    folder = make_folder()
    try:
        async with anyio.create_task_group() as tg:
            await runtime.start(tg)
            path = await runtime.serve(folder, new_socket_name())
            port = free_port()
            argv = [*forwarder_argv(str(path), sys.executable)[:-1], str(port)]
            process = await anyio.open_process(argv)
            try:
                await wait_listening(port, process)
                with anyio.fail_after(20):  # the probe's relayed connection has ended too
                    while runtime.proxy.open_connections:  # noqa: ASYNC110 - the proxy has no event for this
                        await anyio.sleep(0.01)
                env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
                env.update(
                    {
                        k: v.replace(":3128", f":{port}")
                        for k, v in sandbox_environment(policy, str(folder)).items()
                    }
                )
                yield HostProxy(runtime, folder, path, port, env)
            finally:
                with anyio.CancelScope(shield=True):
                    process.terminate()
                    await process.aclose()
                    await runtime.aclose()
    finally:
        remove_folder(folder)


async def raw(path: Path, data: bytes) -> bytes:
    """Send ``data`` straight to the proxy's socket; return everything it answers."""
    async with await anyio.connect_unix(path) as stream:
        await stream.send(data)
        received = b""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                received += await stream.receive()
        return received
