r"""The forwarder that runs inside the sandbox: ``127.0.0.1:3128`` to the proxy's unix socket.

The sandbox has no network interface but loopback, and HTTP clients want a
proxy address, not a socket path. :data:`FORWARDER` (stdlib only, run with
``python3 -I -S -c``) listens on ``127.0.0.1:PORT`` and relays each
connection's bytes to the proxy's socket and back, half-closes included,
with ``TCP_NODELAY`` (without it every HTTPS request waited ~48 ms for
delayed ACKs). One thread, one ``selectors`` loop.

argv: ``SOCKET PORT [PROGRAM ARG...]``. Without a program it serves forever
(the Docker container's main process). With one (a bubblewrap command, whose
network namespace is new each time) it binds first, then runs the program as
its child and exits with the program's status when the program ends;
``SIGTERM`` is left to the program.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FORWARDER", "PROXY_PORT", "proxy_environment"]

PROXY_PORT: Final = 3128
"""Where the forwarder listens inside the sandbox."""

FORWARDER: Final = r"""
import os, selectors, signal, socket, sys

def main():
    path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ, "accept")
    child = None
    if argv:
        child = os.fork()
        if child == 0:
            server.close()
            os.execvp(argv[0], argv)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sel.register(os.pidfd_open(child), selectors.EVENT_READ, "child")
    ends = {}  # socket -> [peer, pending bytes, eof seen, reading]

    def close(sock):
        for s in (sock, ends[sock][0]):
            if s in ends:
                del ends[s]
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()

    def update(sock):
        state = ends.get(sock)
        if state is None:
            return
        events = 0
        if state[3] and len(ends[state[0]][1]) < 1 << 20:
            events |= selectors.EVENT_READ
        if state[1]:
            events |= selectors.EVENT_WRITE
        try:
            key = sel.get_key(sock)
        except KeyError:
            key = None
        if not events:
            if key is not None:
                sel.unregister(sock)
        elif key is None:
            sel.register(sock, events)
        elif key.events != events:
            sel.modify(sock, events)

    def flush(sock):
        state = ends[sock]
        if state[1]:
            sent = sock.send(state[1])
            del state[1][:sent]
        if not state[1] and ends[state[0]][2] == 1:
            sock.shutdown(socket.SHUT_WR)
            ends[state[0]][2] = 2
        if ends[state[0]][2] == 2 and state[2] == 2:
            close(sock)

    while True:
        for key, mask in sel.select():
            what = key.data
            if what == "child":
                _, status = os.waitpid(child, 0)
                code = os.waitstatus_to_exitcode(status)
                if code < 0:
                    signal.signal(-code, signal.SIG_DFL)
                    os.kill(os.getpid(), -code)
                sys.exit(code)
            if what == "accept":
                try:
                    inside, _ = server.accept()
                except OSError:
                    continue
                inside.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                proxy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    proxy.connect(path)
                except OSError as exc:
                    msg = b"egress proxy unavailable: " + str(exc).encode()
                    try:
                        inside.sendall(b"HTTP/1.1 502 " + msg + b"\r\nContent-Length: 0\r\n\r\n")
                    except OSError:
                        pass
                    inside.close()
                    proxy.close()
                    continue
                for s in (inside, proxy):
                    s.setblocking(False)
                ends[inside] = [proxy, bytearray(), 0, True]
                ends[proxy] = [inside, bytearray(), 0, True]
                sel.register(inside, selectors.EVENT_READ)
                sel.register(proxy, selectors.EVENT_READ)
                continue
            sock = key.fileobj
            if sock not in ends:
                continue
            state = ends[sock]
            peer = state[0]
            try:
                if mask & selectors.EVENT_WRITE:
                    flush(sock)
                    if sock not in ends:
                        continue
                if mask & selectors.EVENT_READ and state[3]:
                    data = sock.recv(65536)
                    if data:
                        ends[peer][1] += data
                        flush(peer)
                    else:
                        state[3] = False
                        state[2] = 1
                        flush(peer)
            except OSError:
                close(sock)
                continue
            update(sock)
            update(peer)

main()
"""


def proxy_environment(
    *,
    port: int = PROXY_PORT,
    bundle: str | None = None,
    extra: str | None = None,
) -> dict[str, str]:
    """The variables that send a sandbox's HTTP clients through the forwarder.

    Args:
        port: The forwarder's port.
        bundle: Path (as the sandbox sees it) of the full CA bundle, when the
            sandbox must trust extra CAs (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``,
            ``CURL_CA_BUNDLE``, ``GIT_SSL_CAINFO``, ``PIP_CERT``).
        extra: Path of the extra CAs alone (``NODE_EXTRA_CA_CERTS``).
    """
    proxy = f"http://127.0.0.1:{port}"
    env = {
        "HTTP_PROXY": proxy,
        "HTTPS_PROXY": proxy,
        "http_proxy": proxy,
        "https_proxy": proxy,
        "NO_PROXY": "localhost,127.0.0.1,::1",
        "no_proxy": "localhost,127.0.0.1,::1",
    }
    if bundle is not None:
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
                     "PIP_CERT"):  # fmt: skip
            env[name] = bundle
    if extra is not None:
        env["NODE_EXTRA_CA_CERTS"] = extra
    return env
