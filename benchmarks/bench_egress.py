"""The egress proxy's cost per request, each against a direct connection in the same run.

The destinations are the egress tests' real servers on loopback (plain HTTP
and HTTPS with a test CA, ``tests/egress/servers.py``, in a subprocess); the
proxy is a session's (:class:`EgressRuntime`) in this process's event loop,
reached through the in-sandbox forwarder (run here on the host). A client
subprocess (stdlib ``http.client``) times each request:

1. plain HTTP, a new connection per request;
2. HTTPS through a tunnel (``CONNECT``), a new connection per request;
3. HTTPS intercepted with a header injected, a new connection per request;
4. HTTPS on a kept-alive connection (direct, tunnel, intercepted).

5. a ``bash_tool`` command under bubblewrap with a policy (the forwarder
   starts with each command) against one without.

Then memory: TLS server connections held open, asyncio's own TLS
(``SSLProtocol``) against ``ssl.MemoryBIO`` (anyio's ``TLSStream``, what the
proxy uses), in this process.

Run: ``python -m benchmarks.bench_egress [--quick]``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.tls import TLSStream

from conjure_async import EgressPolicy
from conjure_async._logging import get_logger
from conjure_async.backends import BackendContext, LocalBackend, ToolCall, ToolContext
from tests.egress.conftest import TLS_ADDRESS, Destinations, running_destinations
from tests.egress.helpers import host_proxy

CLIENT = r"""
import http.client, json, socket, ssl, sys, time
plain, tls_port, proxy_port, ca, bundle, n = sys.argv[1:7]
n = int(n)
direct_ctx = ssl.create_default_context(cafile=ca)
proxy_ctx = ssl.create_default_context(cafile=bundle)

def connection(host, through, context):
    if host is None:
        h, p = plain.split(":")
        if through is not None:
            return http.client.HTTPConnection("127.0.0.1", through)
        return http.client.HTTPConnection(h, int(p))
    if through is None:
        conn = http.client.HTTPSConnection("127.0.0.3", int(tls_port), context=context)
        sock = socket.create_connection(("127.0.0.3", int(tls_port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = context.wrap_socket(sock, server_hostname=host)
        return conn
    conn = http.client.HTTPSConnection("127.0.0.1", through, context=context)
    conn.set_tunnel(host, int(tls_port))
    return conn

def request(conn, path, host):
    conn.request("GET", path, headers={"Host": host or plain})
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status

def new_connection(host, through, context):
    start = time.perf_counter()
    conn = connection(host, through, context)
    url = f"http://{plain}/headers" if host is None and through is not None else "/headers"
    request(conn, url, host)
    conn.close()
    return time.perf_counter() - start

def kept_request(conn, host):
    start = time.perf_counter()
    request(conn, "/headers", host)
    return time.perf_counter() - start

# Direct and proxied requests alternate, so a machine whose load changes
# during the run shifts both alike.
port = int(proxy_port)
out = {}
for name, host, context in (("plain", None, None), ("tunnel", "open.test", None),
                            ("intercept", "api.test", None)):
    direct, proxied = [], []
    for _ in range(n):
        direct.append(new_connection(host, None, direct_ctx if host else None))
        proxied.append(new_connection(host, port, proxy_ctx if host else None))
    out[name + "_direct"], out[name + "_proxy"] = direct, proxied
kept = {"direct": connection("open.test", None, direct_ctx),
        "tunnel": connection("open.test", port, proxy_ctx),
        "intercept": connection("api.test", port, proxy_ctx)}
hosts = {"direct": "open.test", "tunnel": "open.test", "intercept": "api.test"}
for key, conn in kept.items():
    request(conn, "/headers", hosts[key])
    out["kept_" + key] = []
for _ in range(n):
    for key, conn in kept.items():
        out["kept_" + key].append(kept_request(conn, hosts[key]))
for conn in kept.values():
    conn.close()
print(json.dumps(out))
"""

HOLDER = r"""
import socket, ssl, sys
port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile=ca)
held = []
for _ in range(n):
    raw = socket.create_connection(("127.0.0.1", port))
    tls = context.wrap_socket(raw, server_hostname="api.test")
    tls.sendall(b"x")
    assert tls.recv(1) == b"x"
    held.append(tls)
print("held", flush=True)
sys.stdin.read()
"""


async def _bwrap_commands(n: int) -> tuple[float, float] | None:
    """Median ms of ``bash_tool`` ``true`` under bubblewrap without and with a policy,
    alternating (``None`` without bwrap)."""
    if shutil.which("bwrap") is None:
        return None
    backends = (
        LocalBackend(sandbox="bwrap"),
        LocalBackend(sandbox="bwrap", egress=EgressPolicy(["pypi.org"])),
    )
    call = ToolCall("call", "bash_tool", {"command": "true"})
    ctx: ToolContext[None] = ToolContext("bench", "call", "bash_tool", get_logger(), None)
    times: tuple[list[float], list[float]] = ([], [])
    async with anyio.create_task_group() as tg:
        for index, backend in enumerate(backends):
            await backend.open(BackendContext(f"bench{index}", tg, get_logger()))
        try:
            for _ in range(n):
                for backend, measured in zip(backends, times, strict=True):
                    start = time.perf_counter()
                    async for _event in backend.run_tool(call, ctx):
                        pass
                    measured.append(time.perf_counter() - start)
        finally:
            for backend in backends:
                await backend.aclose()
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _rss() -> int:
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


async def _latencies(destinations: Destinations, n: int) -> dict[str, list[float]]:
    async with host_proxy(destinations.policy()) as proxy:
        argv = [sys.executable, "-c", CLIENT, destinations.plain, str(destinations.tls_port),
                str(proxy.port), str(destinations.ca), str(proxy.folder / "ca-bundle.pem"),
                str(n)]  # fmt: skip
        result = await anyio.run_process(argv, check=True)
    data: dict[str, list[float]] = json.loads(result.stdout)
    return data


async def _held_memory(destinations: Destinations, n: int, *, mechanism: str) -> float:
    """KB per TLS server connection held open, with asyncio's TLS or MemoryBIO (anyio)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(destinations.folder / "server.pem")
    connections: list[Any] = []

    async def echo_asyncio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.write(await reader.read(1))
        await writer.drain()

    async def echo_anyio(stream: Any) -> None:
        secure = await TLSStream.wrap(stream, server_side=True, ssl_context=context)
        connections.append(secure)
        await secure.send(await secure.receive(1))
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        if mechanism == "asyncio":
            server = await asyncio.start_server(echo_asyncio, "127.0.0.1", 0, ssl=context)
            port = server.sockets[0].getsockname()[1]
        else:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(listener.serve, echo_anyio)
        before = _rss()
        argv = [sys.executable, "-c", HOLDER, str(port), str(destinations.ca), str(n)]
        async with await anyio.open_process(argv) as holder:
            assert holder.stdout is not None
            assert (await holder.stdout.receive()).startswith(b"held")
            grown = _rss() - before
            for connection in connections:  # ours first, then the client's
                if mechanism == "asyncio":
                    connection.close()
                else:
                    await anyio.aclose_forcefully(connection)
            if mechanism == "asyncio":
                server.close()
                await server.wait_closed()
        tg.cancel_scope.cancel()
    if mechanism != "asyncio":
        await listener.aclose()
    return grown / n / 1024


async def run(quick: bool = False) -> list[str]:
    """Markdown for docs/performance.md's "Network policy" section."""
    n = 30 if quick else 200
    held = 50 if quick else 200
    folder = Path(tempfile.mkdtemp(prefix="bench-egress-"))
    with running_destinations(folder) as destinations:
        times = await _latencies(destinations, n)
        bwrap = await _bwrap_commands(10 if quick else 40)
        memory = {
            mechanism: await _held_memory(destinations, held, mechanism=mechanism)
            for mechanism in ("asyncio", "memorybio")
        }
    rows = [
        ("plain HTTP, new connection", "plain_direct", "plain_proxy"),
        ("HTTPS tunnel (CONNECT), new connection", "tunnel_direct", "tunnel_proxy"),
        ("HTTPS intercepted + header injected, new connection", "intercept_direct",
         "intercept_proxy"),
        ("HTTPS tunnel, kept-alive connection", "kept_direct", "kept_tunnel"),
        ("HTTPS intercepted, kept-alive connection", "kept_direct", "kept_intercept"),
    ]  # fmt: skip
    lines = [
        f"### Added latency per request (loopback, medians of {n}, a client subprocess)",
        "",
        "| request | direct | through the proxy | added |",
        "|---|---|---|---|",
    ]
    for label, direct, proxied in rows:
        d, p = _ms(times[direct]), _ms(times[proxied])
        lines.append(f"| {label} | {d:.2f} ms | {p:.2f} ms | +{p - d:.2f} ms |")
    if bwrap is not None:
        bare, behind = bwrap
        lines.append(
            f"| bubblewrap `bash_tool` `true`, forwarder started per command | {bare:.2f} ms "
            f"| {behind:.2f} ms | +{behind - bare:.2f} ms |"
        )
    lines += [
        "",
        (
            "The proxy runs in the session's event loop; the forwarder (the sandbox's "
            "`127.0.0.1:3128`) runs here on the host, so sandbox start-up is not counted. "
            f"Test servers on {TLS_ADDRESS} and 127.0.0.2 (`tests/egress/servers.py`)."
        ),
        "",
        f"### Memory per TLS connection held open ({held} connections, this process)",
        "",
        "| TLS mechanism | per open connection |",
        "|---|---|",
        f"| asyncio's own TLS (`SSLProtocol`, 256 KiB buffer each) | {memory['asyncio']:.0f} KB |",
        (
            f"| `ssl.MemoryBIO` (anyio `TLSStream`, what the proxy uses) | "
            f"{memory['memorybio']:.0f} KB |"
        ),
        "",
        (
            "An intercepted connection is two TLS connections (sandbox side and upstream): "
            "the test `tests/egress/test_memory.py` holds 200 of them open through the proxy "
            "and bounds the growth at 150 KB each."
        ),
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(anyio.run(run, "--quick" in sys.argv)))
