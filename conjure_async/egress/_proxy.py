"""The egress proxy: one per session, on unix sockets, in the session's event loop.

It speaks the two forms every HTTP client uses through a proxy:

* ``CONNECT host:port`` -- a tunnel. The destination is checked against the
  policy, the name resolved (by the proxy: the sandbox has no DNS) and every
  address checked (names resolving to non-public addresses need an address
  entry), the proxy connects to a checked address (never resolving twice),
  then answers ``200`` and relays bytes. For a host with injected headers the
  proxy ends TLS itself (:class:`~._tls.SessionTLS`), reads each HTTP/1.1
  request's head, replaces the injected headers and relays the body; the
  responses flow back unread.
* ``GET http://host/path`` (absolute form) -- plain HTTP, one request per
  connection (``Connection: close`` upstream); injection only with
  ``inject_http=True``.

Anything else is answered at once: ``403`` with the reason in the status line
(clients show a CONNECT answer's status line, not its body), ``502`` when the
destination cannot be resolved or reached, ``503`` over ``max_connections``.

Each decision becomes an :class:`~conjure_async.events.EgressDecision`
(kept for the backend to hand out, :meth:`EgressProxy.drain`) and an
``egress.decision`` log line: host, port, allowed, intercepted, header names.
Header values never leave :class:`~._policy.EgressPolicy`.

Memory: TLS runs over ``ssl.MemoryBIO`` (anyio's ``TLSStream``), about 60 KB
per open intercepted connection; a connection silent for ``idle_timeout`` is
closed, and at most ``max_connections`` are open. See
``docs/adr/0010-egress-proxy.md``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, ByteStream, SocketAttribute, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from conjure_async._logging import Logger
from conjure_async.egress._policy import EgressPolicy, IPAddress, parse_address
from conjure_async.egress._tls import SessionTLS
from conjure_async.events import EgressDecision

__all__ = ["EgressProxy"]

MAX_HEAD = 65536
"""Largest request head (request line and headers) read."""
HEAD_TIMEOUT = 30.0
"""Seconds a new connection has to send its request head."""
CONNECT_TIMEOUT = 10.0
"""Seconds to resolve and connect to a destination."""
KEPT_DECISIONS = 1000
"""Decisions kept for :meth:`EgressProxy.drain` (the oldest are dropped; all are logged)."""

_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.DelimiterNotFound,
    ssl.SSLError,
    OSError,
    ValueError,
)
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_DROPPED = frozenset({b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"})


class _RefusedError(Exception):
    """A request answered without reaching its destination."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Idle:
    """Moves a cancel scope's deadline ``seconds`` ahead on every chunk."""

    __slots__ = ("scope", "seconds")

    def __init__(self, scope: anyio.CancelScope, seconds: float) -> None:
        self.scope = scope
        self.seconds = seconds
        self.touch()

    def touch(self) -> None:
        self.scope.deadline = anyio.current_time() + self.seconds


def _split_host_port(target: str, default: int) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = target.rpartition(":")
        if not sep:
            host, port = target, ""
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise _RefusedError(400, f"bad port in {target!r}")
    if not host:
        raise _RefusedError(400, f"no host in {target!r}")
    return host.lower().rstrip("."), int(port) if port else default


def _answer(status: int, reason: str) -> bytes:
    """A complete answer with ``reason`` as the status line's reason phrase and as the body."""
    line = reason.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    body = line + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, line, len(body), body)
    )


class EgressProxy:
    """One session's proxy: serves unix sockets, applies the policy, records decisions.

    Run :meth:`run` in a task group (``await tg.start(proxy.run)``); then
    :meth:`listen` on as many socket paths as needed. :meth:`aclose` (or
    cancelling the task group) stops everything and removes the sockets.

    Args:
        policy: What is allowed and injected.
        logger: Where decisions are logged (``egress.decision``).
    """

    def __init__(self, policy: EgressPolicy, *, logger: Logger) -> None:
        self.policy = policy
        self._log = logger
        self._tls = SessionTLS(policy) if policy.injected_hosts else None
        self._decisions: deque[EgressDecision] = deque(maxlen=KEPT_DECISIONS)
        self._tg: TaskGroup | None = None
        self._done: anyio.Event | None = None
        self._sockets: list[Path] = []
        self.open_connections = 0
        """Connections being served now."""
        self.label = f"egress policy {policy.name!r}" if policy.name else "egress policy"

    @property
    def ca_pem(self) -> bytes:
        """The session CA certificate the sandbox must trust (empty when nothing is intercepted)."""
        return self._tls.ca_pem if self._tls is not None else b""

    def bundles(self) -> tuple[bytes, bytes]:
        """``(full, extra)`` CA bundles for the sandbox (see :meth:`SessionTLS.bundles`)."""
        tls = self._tls if self._tls is not None else SessionTLS(self.policy)
        return tls.bundles()

    # -- lifecycle -------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (start it with ``await tg.start(proxy.run)``)."""
        self._done = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            for path in self._sockets:
                path.unlink(missing_ok=True)
            self._sockets.clear()
            self._done.set()

    async def listen(self, path: Path) -> None:
        """Accept connections on a new unix socket at ``path`` (mode 0666)."""
        if self._tg is None:
            raise RuntimeError("the egress proxy is not running")
        await anyio.Path(path).unlink(missing_ok=True)
        listener = await anyio.create_unix_listener(path, mode=0o666)
        self._sockets.append(path)
        self._tg.start_soon(self._serve, listener)

    async def _serve(self, listener: Any) -> None:
        async with listener:
            await listener.serve(self._handle, task_group=self._tg)

    async def aclose(self) -> None:
        """Stop serving, close every connection, remove the sockets (shielded)."""
        with anyio.CancelScope(shield=True):
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            if self._done is not None:
                with anyio.move_on_after(10):
                    await self._done.wait()

    def drain(self) -> list[EgressDecision]:
        """The decisions made since the last call (oldest first)."""
        taken = list(self._decisions)
        self._decisions.clear()
        return taken

    # -- one connection ----------------------------------------------------------

    async def _handle(self, client: ByteStream) -> None:
        async with client:
            if self.open_connections >= self.policy.max_connections:
                limit = self.policy.max_connections
                await client.send(_answer(503, f"too many connections through the proxy ({limit})"))
                return
            self.open_connections += 1
            try:
                await self._serve_one(client)
            except _RefusedError as refused:
                with contextlib.suppress(*_STREAM_ERRORS):
                    await client.send(_answer(refused.status, refused.reason))
            except _STREAM_ERRORS:
                pass
            finally:
                self.open_connections -= 1

    async def _serve_one(self, client: ByteStream) -> None:
        reader = BufferedByteReceiveStream(client)
        head = b""
        with anyio.move_on_after(HEAD_TIMEOUT):
            head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD)
        if not head:
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _RefusedError(400, "not an HTTP/1.x proxy request")
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, port = _split_host_port(target, 443)
            await self._tunnel(client, reader, host, port)
            return
        url = urlsplit(target)
        if url.scheme.lower() != "http" or not url.hostname:
            raise _RefusedError(400, "the proxy takes CONNECT or absolute http:// requests only")
        port = url.port or 80
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        first = f"{method} {path} {version}".encode("latin-1")
        host = url.hostname.lower().rstrip(".")
        await self._plain(
            client, reader, host=host, port=port, method=method, first=first, rest=rest
        )

    # -- decisions ---------------------------------------------------------------

    def _record(
        self,
        host: str,
        port: int,
        method: str,
        *,
        allowed: bool,
        intercepted: bool = False,
        headers: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        decision = EgressDecision(
            host=host,
            port=port,
            method=method,
            allowed=allowed,
            intercepted=intercepted,
            headers=list(headers),
            reason=reason,
        )
        self._decisions.append(decision)
        # The log line: the decision's fields but its event kind and (unknown here) call id.
        self._log.info("egress.decision", **decision.model_dump(exclude={"kind", "call_id"}))

    def _refuse(self, host: str, port: int, method: str, status: int, reason: str) -> _RefusedError:
        """Record a refused request; the error answers it with ``status`` and ``reason``."""
        self._record(host, port, method, allowed=False, reason=reason)
        return _RefusedError(status, reason)

    def _deny(self, host: str, port: int, method: str, why: str) -> _RefusedError:
        return self._refuse(host, port, method, 403, f"Blocked by {self.label}: {why}")

    async def _decide(self, host: str, port: int, method: str, *, plain: bool) -> list[IPAddress]:
        """Check ``host:port``; return the addresses to connect to, else raise a refusal."""
        policy = self.policy
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if policy.match(host, port) is None:
            kind = "address" if parse_address(host) is not None else "host"
            raise self._deny(host, port, method, f"{kind} {target} is not allowed")
        if plain and policy.injected_headers(host, port) and not policy.inject_http:
            raise self._deny(host, port, method, f"credentials for {host} are sent over HTTPS only")
        addresses = await self._resolve(host, port, method)
        for address in addresses:
            if not policy.address_allowed(address, port):
                raise self._deny(
                    host,
                    port,
                    method,
                    f"{host} resolves to {address}, a private or local address no entry allows",
                )
        return addresses

    async def _resolve(self, host: str, port: int, method: str) -> list[IPAddress]:
        literal = parse_address(host)
        if literal is not None:
            return [literal]
        fixed = self.policy.hosts.get(host)
        if fixed is not None:
            return [fixed]
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise self._refuse(host, port, method, 502, f"cannot resolve {host}: {exc}") from None
        found: list[IPAddress] = []
        for info in infos:
            address = parse_address(str(info[4][0]).split("%", 1)[0])
            if address is not None and address not in found:
                found.append(address)
        return found

    async def _connect(self, host: str, port: int, addresses: list[IPAddress]) -> ByteStream:
        problem = "no address"
        for address in addresses:
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    return await anyio.connect_tcp(str(address), port)
            except (OSError, TimeoutError) as exc:
                problem = f"{address}: {exc or type(exc).__name__}"
        raise _RefusedError(502, f"cannot connect to {host}:{port} ({problem})")

    # -- CONNECT -----------------------------------------------------------------

    async def _tunnel(
        self, client: ByteStream, reader: BufferedByteReceiveStream, host: str, port: int
    ) -> None:
        addresses = await self._decide(host, port, "CONNECT", plain=False)
        headers = self.policy.injected_headers(host, port)
        upstream = await self._connect(host, port, addresses)
        async with upstream:
            if headers and self._tls is not None:
                try:
                    secure = await TLSStream.wrap(
                        upstream,
                        hostname=host,
                        ssl_context=self._tls.upstream,
                        standard_compatible=False,
                    )
                except (ssl.SSLError, *_STREAM_ERRORS) as exc:
                    reason = f"TLS with {host}:{port} failed: {exc}"
                    raise self._refuse(host, port, "CONNECT", 502, reason) from None
                names = [name for name, _ in headers]
                self._record(host, port, "CONNECT", allowed=True, intercepted=True, headers=names)
                await client.send(_ESTABLISHED)
                await self._intercept(client, secure, host, headers)
                return
            self._record(host, port, "CONNECT", allowed=True)
            await client.send(_ESTABLISHED)
            await self._relay(reader, client, upstream)

    async def _relay(
        self, client_in: ByteReceiveStream, client_out: ByteSendStream, upstream: ByteStream
    ) -> None:
        """Bytes both ways, half-closes passed on, until both ends are done or idle.

        ``client_in`` is the buffered reader of the request head: what the
        client sent after its head comes out of it first.
        """
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg.cancel_scope, self.policy.idle_timeout)
            stop = tg.cancel_scope.cancel
            tg.start_soon(partial(_pipe, eof=True, on_end=stop), upstream, client_out, idle)
            await _pipe(client_in, upstream, idle, eof=True, on_end=stop)

    async def _intercept(
        self,
        client: ByteStream,
        upstream: ByteStream,
        host: str,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        assert self._tls is not None
        secure = await TLSStream.wrap(
            client,
            server_side=True,
            ssl_context=self._tls.server_context(host),
            standard_compatible=False,
        )
        try:
            async with anyio.create_task_group() as tg:
                idle = _Idle(tg.cancel_scope, self.policy.idle_timeout)
                # Responses flow back unread; when the server closes, so do we (the
                # request loop then reads the end of the client's stream).
                end = partial(_shutdown, secure)
                tg.start_soon(partial(_pipe, eof=False, on_end=end), upstream, secure, idle)
                with contextlib.suppress(*_STREAM_ERRORS):
                    await _requests(BufferedByteReceiveStream(secure), upstream, headers, idle)
                tg.cancel_scope.cancel()
        finally:
            await anyio.aclose_forcefully(secure)

    # -- plain HTTP --------------------------------------------------------------

    async def _plain(
        self,
        client: ByteStream,
        reader: BufferedByteReceiveStream,
        *,
        host: str,
        port: int,
        method: str,
        first: bytes,
        rest: bytes,
    ) -> None:
        addresses = await self._decide(host, port, method, plain=True)
        headers = self.policy.injected_headers(host, port)
        names = {name.lower().encode() for name, _ in headers}
        kept = [first]
        for line in rest.split(b"\r\n"):
            name = line.partition(b":")[0].strip().lower()
            if line and name not in _DROPPED and name not in names:
                kept.append(line)
        kept.append(b"Connection: close")
        kept += [f"{name}: {value}".encode("latin-1") for name, value in headers]
        upstream = await self._connect(host, port, addresses)
        async with upstream:
            self._record(
                host,
                port,
                method,
                allowed=True,
                intercepted=bool(headers),
                headers=[name for name, _ in headers],
            )
            await upstream.send(b"\r\n".join(kept) + b"\r\n\r\n")  # the reader has the rest
            async with anyio.create_task_group() as tg:
                idle = _Idle(tg.cancel_scope, self.policy.idle_timeout)
                tg.start_soon(partial(_pipe, eof=True, on_end=None), reader, upstream, idle)
                # The response is complete: end the client's connection, which ends
                # the request pipe's read too.
                await _pipe(upstream, client, idle, eof=False, on_end=partial(_shutdown, client))


async def _pipe(
    source: ByteReceiveStream,
    sink: ByteSendStream,
    idle: _Idle,
    *,
    eof: bool,
    on_end: Callable[[], object] | None,
) -> None:
    """Copy ``source`` to ``sink``; at its end pass the half-close on (``eof``), else ``on_end``.

    ``on_end`` also runs when either side fails.
    """
    try:
        async for chunk in source:
            idle.touch()
            await sink.send(chunk)
        if eof:
            await sink.send_eof()  # type: ignore[attr-defined]  # a ByteStream's; TLS: NotImplemented
            return
    except (*_STREAM_ERRORS, NotImplementedError):
        pass
    if on_end is not None:
        on_end()


def _shutdown(stream: ByteStream) -> None:
    """End a client's connection both ways, so that a pending read returns at once.

    Used instead of cancelling that read: anyio's unix socket streams (asyncio)
    can log ``InvalidStateError`` when a read is cancelled as data arrives.
    """
    raw = stream.extra(SocketAttribute.raw_socket, None)  # noqa: S610 - anyio attributes, not SQL
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)


async def _requests(
    reader: BufferedByteReceiveStream,
    upstream: ByteSendStream,
    headers: tuple[tuple[str, str], ...],
    idle: _Idle,
) -> None:
    """Relay HTTP/1.1 requests, each with the injected headers in place of the client's."""
    names = {name.lower().encode() for name, _ in headers}
    added = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
    while True:
        head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD)
        idle.touch()
        lines = head.split(b"\r\n")
        kept = [lines[0]]
        length, chunked, upgrade = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name in names:
                continue
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"upgrade":
                upgrade = True
            kept.append(line)
        await upstream.send(b"\r\n".join(kept) + b"\r\n" + added + b"\r\n")
        if chunked:
            await _chunked_body(reader, upstream, idle)
        elif length > 0:
            await _exact_body(reader, upstream, length, idle)
        if upgrade:  # e.g. a WebSocket: from here on, bytes
            async for chunk in reader:
                idle.touch()
                await upstream.send(chunk)
            return


async def _exact_body(
    reader: BufferedByteReceiveStream, upstream: ByteSendStream, length: int, idle: _Idle
) -> None:
    while length > 0:
        chunk = await reader.receive(min(length, 65536))
        idle.touch()
        length -= len(chunk)
        await upstream.send(chunk)


async def _chunked_body(
    reader: BufferedByteReceiveStream, upstream: ByteSendStream, idle: _Idle
) -> None:
    while True:
        line = await reader.receive_until(b"\r\n", 4096)
        await upstream.send(line + b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (trailer := await reader.receive_until(b"\r\n", MAX_HEAD)) != b"":
                await upstream.send(trailer + b"\r\n")
            await upstream.send(b"\r\n")
            return
        await _exact_body(reader, upstream, size + 2, idle)


def socket_path(folder: Path) -> Path:
    """A new, unguessable socket path in ``folder`` (the folder is 0711: not listable)."""
    return folder / f"proxy-{os.urandom(8).hex()}.sock"
