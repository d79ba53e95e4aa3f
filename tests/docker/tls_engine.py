"""A second Docker daemon on 127.0.0.1 over TCP with TLS (certificates made here).

Stands in for a remote engine: the tests reach it only through
``docker_host="tcp://127.0.0.1:PORT"`` and an ``ssl_context`` (client
certificate required, ``--tlsverify``).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.docker.engine import start_dockerd, stop_process

_CERTS = """
set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 \
  -subj /CN=conjure-test-ca
openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
  -out server-cert.pem -days 2 -extfile server.ext
openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client
printf 'extendedKeyUsage=clientAuth\\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
  -out cert.pem -days 2 -extfile client.ext
"""


@dataclass
class TlsEngine:
    host: str
    """``tcp://127.0.0.1:PORT``."""
    certs: Path
    """``ca.pem``, ``cert.pem``, ``key.pem`` (the client's), as ``DOCKER_CERT_PATH`` wants."""
    process: subprocess.Popen[bytes]
    folder: Path

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the engine against the test CA; present the client certificate."""
        return _client_context(self.certs)


def _client_context(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(host: str, certs: Path) -> bool:
    try:
        with (
            socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), 1) as raw,
            _client_context(certs).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in tls.recv(4096)
    except OSError:
        return False


def start_tls_engine() -> TlsEngine | str:
    """Make certificates, start ``dockerd --tlsverify`` on a free port; or say why not."""
    if shutil.which("dockerd") is None or shutil.which("openssl") is None:
        return "dockerd and openssl are needed for the TLS engine"
    folder = Path(tempfile.mkdtemp(prefix="cj-tls-dockerd-", dir="/tmp"))
    certs = folder / "certs"
    certs.mkdir()
    made = subprocess.run(["bash", "-c", _CERTS], cwd=certs, capture_output=True, check=False)
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        return f"openssl failed: {made.stderr.decode(errors='replace')[-500:]}"
    port = _free_port()
    host = f"tcp://127.0.0.1:{port}"
    tls = [
        "--tlsverify",
        f"--tlscacert={certs / 'ca.pem'}",
        f"--tlscert={certs / 'server-cert.pem'}",
        f"--tlskey={certs / 'server-key.pem'}",
    ]
    started = start_dockerd(folder, host, lambda: _answers(host, certs), *tls)
    if isinstance(started, str):
        shutil.rmtree(folder, ignore_errors=True)
        return f"the TLS dockerd did not come up: {started}"
    return TlsEngine(host, certs, started, folder)


def stop_tls_engine(engine: TlsEngine) -> None:
    stop_process(engine.process)
    shutil.rmtree(engine.folder, ignore_errors=True)
