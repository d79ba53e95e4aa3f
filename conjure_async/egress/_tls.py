"""TLS for the egress proxy: the per-session CA, leaf certificates, the upstream context.

Only hosts with injected headers are intercepted. For them the proxy is the
TLS server the sandbox talks to, with a leaf certificate signed by a
certificate authority made for this session alone: an EC P-256 key that
never leaves this process's memory (not written anywhere), valid one day,
and name-constrained to the injected hosts, so even a stolen CA certificate
vouches for nothing else. Leaf certificates are made on first use per host
and kept (one :class:`ssl.SSLContext` each); their keys reach OpenSSL
through an anonymous memory file (``memfd_create``), never a path another
process could read. The CA certificate (public) is what the sandbox trusts,
in a bundle with the system's CAs and ``upstream_ca``.

Every TLS connection of the proxy (both sides) runs over ``ssl.MemoryBIO``
through anyio's ``TLSStream``, not asyncio's ``SSLProtocol``, which keeps a
256 KiB buffer per connection: measured here at ~575 KB per open intercepted
connection against ~60 KB (see ``docs/adr/0010-egress-proxy.md``).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from conjure_async._exceptions import MissingDependencyError
from conjure_async.egress._policy import EgressPolicy, parse_address

__all__ = ["SessionTLS", "system_ca_bundle"]

_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, BSD
)


def system_ca_bundle() -> bytes:
    """The host's CA certificates as PEM (empty when none is found)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_SYSTEM_BUNDLES):
        if candidate:
            with contextlib.suppress(OSError):
                data = Path(candidate).read_bytes()
                if b"BEGIN CERTIFICATE" in data:
                    return data if data.endswith(b"\n") else data + b"\n"
    return b""


def _crypto() -> Any:
    try:
        from cryptography import x509  # noqa: PLC0415 - optional dependency, loaded on first use
    except ImportError as exc:
        raise MissingDependencyError("cryptography", "egress") from exc
    return x509


def _load_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """Load a certificate and key from memory (an anonymous file; a 0600 temp file elsewhere)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("conjure-egress-leaf", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="conjure-egress-")  # pragma: no cover - not Linux
    try:  # pragma: no cover - not Linux
        os.write(fd, pem)
        os.close(fd)
        context.load_cert_chain(path)
    finally:  # pragma: no cover - not Linux
        Path(path).unlink(missing_ok=True)


class SessionTLS:
    """The TLS material of one session's proxy.

    Args:
        policy: The session's policy (its injected hosts and ``upstream_ca``).
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._leaves: dict[str, ssl.SSLContext] = {}
        self._ca: tuple[Any, Any] | None = None
        self.ca_pem = b""
        """The session CA's certificate (PEM); empty when nothing is intercepted."""
        upstream = ssl.create_default_context()
        if policy.upstream_ca is not None:
            upstream.load_verify_locations(cafile=policy.upstream_ca)
        upstream.set_alpn_protocols(["http/1.1"])
        self.upstream = upstream
        """The client context for intercepted hosts (verifies them, HTTP/1.1 only)."""
        if policy.injected_hosts:
            self._make_ca()

    def _make_ca(self) -> None:
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415 - optional dependency, loaded on first use
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency, loaded on first use
        from cryptography.x509.oid import NameOID  # noqa: PLC0415 - optional dependency, loaded on first use

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conjure_async session CA")])
        now = datetime.datetime.now(datetime.UTC)
        permitted: list[Any] = []
        for host, _ in self.policy.injected_hosts:
            address = parse_address(host)
            if address is None:
                permitted.append(x509.DNSName(host))
            else:
                permitted.append(x509.IPAddress(ipaddress.ip_network(address)))
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.NameConstraints(permitted, None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        self._ca = (key, cert)
        self.ca_pem = cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, host: str) -> ssl.SSLContext:
        """The TLS server context presenting a leaf certificate for ``host`` (made once)."""
        context = self._leaves.get(host)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_alpn_protocols(["http/1.1"])
            _load_chain(context, self._leaf_pem(host))
            self._leaves[host] = context
        return context

    def _leaf_pem(self, host: str) -> bytes:
        if self._ca is None:
            raise RuntimeError(f"{host} is not an intercepted host")
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415 - optional dependency, loaded on first use
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency, loaded on first use
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415 - optional dependency, loaded on first use

        ca_key, ca_cert = self._ca
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        address = parse_address(host)
        alt = x509.DNSName(host) if address is None else x509.IPAddress(address)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem: bytes = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem

    def bundles(self) -> tuple[bytes, bytes]:
        """``(full, extra)``: system CAs + extra + session CA, and extra + session CA alone."""
        extra = b""
        if self.policy.upstream_ca is not None:
            extra += Path(self.policy.upstream_ca).read_bytes().rstrip(b"\n") + b"\n"
        extra += self.ca_pem
        return system_ca_bundle() + extra, extra
