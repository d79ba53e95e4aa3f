r"""The forwarder that runs inside the sandbox: ``127.0.0.1:3128`` to the proxy's unix socket.

The sandbox has no network interface but loopback, and HTTP clients want a
proxy address, not a socket path. :data:`FORWARDER` (stdlib only, run with
``python3 -I -S -c``) listens on ``127.0.0.1:PORT`` and relays each
connection's bytes to the proxy's socket and back, half-closes included,
with ``TCP_NODELAY`` (without it every HTTPS request waited ~48 ms for
delayed ACKs). One thread, one ``epoll`` loop, the C modules ``_socket`` and
``_signal`` only: it starts with every bubblewrap command, and ``socket``,
``selectors`` and ``signal`` cost ~20 ms more to import.

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
import os, select, sys
import _signal, _socket  # the C modules: socket, selectors and signal import enum (~20 ms)

def main():
    path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    server.setblocking(False)
    poll = select.epoll()
    poll.register(server.fileno(), select.EPOLLIN)
    child = pidfd = None
    if argv:  # posix_spawn (vfork): a fork of this process costs more; sockets are CLOEXEC
        child = os.posix_spawnp(argv[0], argv, os.environ)
        _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
        pidfd = os.pidfd_open(child)
        poll.register(pidfd, select.EPOLLIN)
    ends = {}  # fd -> [socket, peer fd, pending bytes, eof state, reading]
    masks = {}

    def close(fd):
        for f in (fd, ends[fd][1]):
            if f in ends:
                sock = ends.pop(f)[0]
                if masks.pop(f, 0):
                    poll.unregister(f)
                sock.close()

    def update(fd):
        state = ends.get(fd)
        if state is None:
            return
        events = 0
        if state[4] and len(ends[state[1]][2]) < 1 << 20:
            events |= select.EPOLLIN
        if state[2]:
            events |= select.EPOLLOUT
        old = masks.get(fd, 0)
        if events == old:
            return
        if not events:
            poll.unregister(fd)
            del masks[fd]
        elif old:
            poll.modify(fd, events)
            masks[fd] = events
        else:
            poll.register(fd, events)
            masks[fd] = events

    def flush(fd):
        state = ends[fd]
        peer = ends[state[1]]
        if state[2]:
            sent = state[0].send(state[2])
            del state[2][:sent]
        if not state[2] and peer[3] == 1:  # the peer's end of input, passed on
            state[0].shutdown(_socket.SHUT_WR)
            peer[3] = 2
        if peer[3] == 2 and state[3] == 2:
            close(fd)

    while True:
        for fd, mask in poll.poll():
            if fd == pidfd:
                _, status = os.waitpid(child, 0)
                code = os.waitstatus_to_exitcode(status)
                if code < 0:  # die the way the program died
                    if -code != _signal.SIGKILL:
                        _signal.signal(-code, _signal.SIG_DFL)
                    os.kill(os.getpid(), -code)
                os._exit(code)  # nothing to flush; finalizing the interpreter costs ~10 ms
            if fd == server.fileno():
                try:
                    accepted, _ = server._accept()
                except OSError:
                    continue
                inside = _socket.socket(fileno=accepted)
                inside.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                proxy = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    proxy.connect(path)
                except OSError as exc:
                    msg = b"egress proxy unavailable: " + str(exc).encode()
                    try:
                        inside.send(b"HTTP/1.1 502 " + msg + b"\r\nContent-Length: 0\r\n\r\n")
                    except OSError:
                        pass
                    inside.close()
                    proxy.close()
                    continue
                inside.setblocking(False)
                proxy.setblocking(False)
                a, b = inside.fileno(), proxy.fileno()
                ends[a] = [inside, b, bytearray(), 0, True]
                ends[b] = [proxy, a, bytearray(), 0, True]
                update(a)
                update(b)
                continue
            if fd not in ends:
                continue
            state = ends[fd]
            peer = state[1]
            try:
                if mask & (select.EPOLLOUT | select.EPOLLERR):
                    flush(fd)
                    if fd not in ends:
                        continue
                if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and state[4]:
                    data = state[0].recv(65536)
                    if data:
                        ends[peer][2] += data
                        flush(peer)
                    else:
                        state[4] = False
                        state[3] = 1
                        flush(peer)
            except OSError:
                close(fd)
                continue
            update(fd)
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
