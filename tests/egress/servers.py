"""Real destinations for the egress tests: a plain HTTP and an HTTPS server on loopback.

Run as a program (``python servers.py FOLDER PLAIN_HOST PLAIN_PORT TLS_HOST TLS_PORT``):
makes a test CA (``FOLDER/test-ca.pem``) and a server certificate for the
test names and the TLS address, serves both until stdin closes, and prints
``ready PLAIN_PORT TLS_PORT`` once listening (port 0 picks a free one).

Every server answers ``GET /headers`` with the request headers it received
(JSON), and serves the files under ``FOLDER/www`` (a Python package index, a
git repository over git's "dumb" HTTP protocol).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import ssl
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMES = ("api.test", "open.test", "denied.test", "pypi.test", "git.test")
HIDDEN = ("authorization", "x-api-key")
"""Headers answered as a digest: the sandbox must never see the credential, even echoed."""


def digest(value: str) -> str:
    """How the servers show a credential header: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _seen(headers: object) -> dict[str, str]:
    items = headers.items()  # type: ignore[attr-defined]
    return {k: digest(v) if k.lower() in HIDDEN else v for k, v in items}


def _certificates(folder: Path, address: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in NAMES] + [x509.IPAddress(ipaddress.ip_address(address))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "test-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _handler(root: Path) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            if self.path.startswith("/headers"):
                body = json.dumps(_seen(self.headers)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def do_POST(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                data = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    data += self.rfile.read(size + 2)[:-2]
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
            else:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.dumps({"headers": _seen(self.headers), "size": len(data)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    folder = Path(sys.argv[1])
    plain_host, plain_port, tls_host, tls_port = sys.argv[2:6]
    _certificates(folder, tls_host)
    www = folder / "www"
    www.mkdir(exist_ok=True)
    handler = _handler(www)
    ThreadingHTTPServer.daemon_threads = True
    plain = ThreadingHTTPServer((plain_host, int(plain_port)), handler)
    secure = ThreadingHTTPServer((tls_host, int(tls_port)), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for server in (plain, secure):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {plain.server_address[1]} {secure.server_address[1]}", flush=True)
    sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
