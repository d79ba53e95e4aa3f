"""A second Docker daemon on 127.0.0.1 over TCP with TLS (certificates made here).

Stands in for a remote engine: the tests reach it only through
``docker_host="tcp://127.0.0.1:PORT"`` and an ``ssl_context`` (client
certificate required, ``--tlsverify``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        context.load_cert_chain(str(self.certs / "cert.pem"), str(self.certs / "key.pem"))
        return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(engine: TlsEngine) -> bool:
    try:
        with (
            socket.create_connection(("127.0.0.1", int(engine.host.rsplit(":", 1)[1])), 1) as raw,
            engine.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
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
    argv = [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        f"--data-root={folder / 'data'}",
        f"--exec-root={folder / 'exec'}",
        f"--pidfile={folder / 'dockerd.pid'}",
        "--tlsverify",
        f"--tlscacert={certs / 'ca.pem'}",
        f"--tlscert={certs / 'server-cert.pem'}",
        f"--tlskey={certs / 'server-key.pem'}",
        f"--host=tcp://127.0.0.1:{port}",
    ]
    log = (folder / "dockerd.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    engine = TlsEngine(f"tcp://127.0.0.1:{port}", certs, process, folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(engine):
            return engine
        time.sleep(0.1)
    text = (folder / "dockerd.log").read_text(errors="replace")[-1500:]
    stop_tls_engine(engine)
    return f"the TLS dockerd did not come up: {text}"


def stop_tls_engine(engine: TlsEngine) -> None:
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            engine.process.kill()
            engine.process.wait(timeout=10)
    shutil.rmtree(engine.folder, ignore_errors=True)
