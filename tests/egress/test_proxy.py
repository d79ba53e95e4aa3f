"""The egress proxy on this host, with real clients and real servers (no sandbox yet)."""

from __future__ import annotations

import json
import logging
import ssl
import sys

import anyio
import pytest

from conjure_async import EgressPolicy
from tests.egress.conftest import BEARER, KEY, SECRET, TLS_ADDRESS, Destinations
from tests.egress.helpers import host_proxy, raw

pytestmark = pytest.mark.anyio


async def test_allowed_tunnel_reaches_the_destination(destinations: Destinations) -> None:
    """An allowed HTTPS host answers through a tunnel; nothing is injected there."""
    async with host_proxy(destinations.policy()) as proxy:
        code, out, err = await proxy.curl(f"{destinations.https('open.test')}/headers")
    assert code == 0, err
    assert "Authorization" not in json.loads(out)


async def test_injected_header_replaces_the_clients(destinations: Destinations) -> None:
    """api.test gets the policy's header, not the one the client sent; the client never sees it."""
    async with host_proxy(destinations.policy()) as proxy:
        url = f"{destinations.https('api.test')}/headers"
        code, out, err = await proxy.curl("-H", "Authorization: mine", url, url)
        decisions = proxy.runtime.take("call-1")
    assert code == 0, err
    first, second = out.replace("}{", "}\n{").splitlines()  # two requests, one connection
    assert json.loads(first)["Authorization"] == BEARER
    assert json.loads(second)["Authorization"] == BEARER
    assert [(d.host, d.allowed, d.intercepted, d.headers) for d in decisions] == [
        ("api.test", True, True, ["Authorization"])
    ]


async def test_denied_host_gets_403_naming_the_policy(destinations: Destinations) -> None:
    """A host outside the allow-list is refused with the reason in the status line."""
    async with host_proxy(destinations.policy(name="ci")) as proxy:
        code, _, err = await proxy.curl("-v", f"{destinations.https('denied.test')}/headers")
        answer = await raw(proxy.socket, b"CONNECT denied.test:443 HTTP/1.1\r\n\r\n")
        decisions = proxy.runtime.take("c")
    assert code == 56
    assert "403 Blocked by egress policy 'ci': host denied.test" in err
    assert answer.startswith(b"HTTP/1.1 403 Blocked by egress policy 'ci': host denied.test:443")
    assert [(d.host, d.allowed) for d in decisions] == [("denied.test", False)] * 2


async def test_wrong_port_bare_address_and_plain_http(destinations: Destinations) -> None:
    """Wrong port and unlisted bare address are refused; the listed plain-HTTP address works."""
    async with host_proxy(destinations.policy()) as proxy:
        wrong = await raw(proxy.socket, b"CONNECT open.test:8443 HTTP/1.1\r\n\r\n")
        bare = await raw(proxy.socket, b"CONNECT 127.0.0.4:443 HTTP/1.1\r\n\r\n")
        code, out, err = await proxy.curl(f"http://{destinations.plain}/headers")
        denied = await raw(proxy.socket, b"GET http://127.0.0.4/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wrong.startswith(b"HTTP/1.1 403 Blocked by egress policy: host open.test:8443")
    assert bare.startswith(b"HTTP/1.1 403 Blocked by egress policy: address 127.0.0.4:443")
    assert code == 0, err
    assert json.loads(out)["Connection"] == "close"
    assert denied.startswith(b"HTTP/1.1 403 ")


async def test_names_resolving_to_private_addresses_need_an_address_entry(
    destinations: Destinations,
) -> None:
    """A wildcard name resolving to loopback is refused; an address entry lets it through."""
    hosts = {"x.wild.test": TLS_ADDRESS}
    port = destinations.tls_port
    request = f"CONNECT x.wild.test:{port} HTTP/1.1\r\n\r\n".encode()
    async with host_proxy(EgressPolicy([f"*.wild.test:{port}"], hosts=hosts)) as proxy:
        refused = await raw(proxy.socket, request)
    explicit = EgressPolicy([f"*.wild.test:{port}", f"{TLS_ADDRESS}:{port}"], hosts=hosts)
    async with host_proxy(explicit) as proxy, await anyio.connect_unix(proxy.socket) as stream:
        await stream.send(request)
        allowed = await stream.receive()
    assert b"resolves to 127.0.0.3, a private or local address no entry allows" in refused
    assert allowed.startswith(b"HTTP/1.1 200")


async def test_plain_http_injection_needs_the_opt_in(destinations: Destinations) -> None:
    """Plain HTTP to an injected host is refused unless ``inject_http=True``; then injected."""
    target = destinations.plain
    inject = {target: {"X-Api-Key": SECRET}}
    url = f"http://{target}/headers"
    async with host_proxy(EgressPolicy(inject=inject)) as proxy:
        code, _, err = await proxy.curl("-v", "-f", url)
    async with host_proxy(EgressPolicy(inject=inject, inject_http=True)) as proxy:
        code_ok, out, _ = await proxy.curl(url)
    assert code == 22
    assert "credentials for 127.0.0.2 are sent over HTTPS only" in err
    assert code_ok == 0
    assert json.loads(out)["X-Api-Key"] == KEY


async def test_chunked_and_sized_bodies_pass_intercepted(destinations: Destinations) -> None:
    """Request bodies (sized and chunked) reach an intercepted host whole, header injected."""
    async with host_proxy(destinations.policy()) as proxy:
        url = f"{destinations.https('api.test')}/upload"
        code, sized, _ = await proxy.curl("--data-binary", "x" * 100_000, url)
        code2, chunked, err = await proxy.curl(
            "-H", "Transfer-Encoding: chunked", "--data-binary", "y" * 70_000, url
        )
    assert code == 0
    assert json.loads(sized) == {"headers": json.loads(sized)["headers"], "size": 100_000}
    assert json.loads(sized)["headers"]["Authorization"] == BEARER
    assert code2 == 0, err
    assert json.loads(chunked)["headers"]["Transfer-Encoding"] == "chunked"


async def test_untrusted_upstream_certificate_is_a_502(destinations: Destinations) -> None:
    """Without ``upstream_ca`` the proxy does not trust the test server: 502, no request sent."""
    async with host_proxy(destinations.policy(upstream_ca=None)) as proxy:
        code, _, err = await proxy.curl("-v", f"{destinations.https('api.test')}/headers")
    assert code == 56
    assert "502 TLS with api.test" in err
    assert "CERTIFICATE_VERIFY_FAILED" in err


async def test_urllib_follows_the_proxy_variables(destinations: Destinations) -> None:
    """Python's urllib (stdlib) works through the proxy with the sandbox's variables alone."""
    code = (
        "import urllib.request, sys\n"
        f"print(urllib.request.urlopen({destinations.https('api.test')!r} + '/headers').read()"
        ".decode())\n"
        "try:\n"
        f"    urllib.request.urlopen({destinations.https('denied.test')!r})\n"
        "except OSError as e:\n"
        "    print('denied:', e)\n"
    )
    async with host_proxy(destinations.policy()) as proxy:
        result = await anyio.run_process([sys.executable, "-c", code], env=proxy.env, check=False)
    out = result.stdout.decode()
    assert BEARER in out
    assert "Tunnel connection failed: 403 Blocked by egress policy: host denied.test" in out


async def test_idle_connections_are_closed(destinations: Destinations) -> None:
    """A tunnel silent for ``idle_timeout`` is closed by the proxy."""
    policy = destinations.policy(idle_timeout=0.3)
    port = destinations.tls_port
    async with host_proxy(policy) as proxy, await anyio.connect_unix(proxy.socket) as stream:
        await stream.send(f"CONNECT open.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await stream.receive()).startswith(b"HTTP/1.1 200")
        with anyio.fail_after(30), pytest.raises(anyio.EndOfStream):
            await stream.receive()
        assert proxy.runtime.proxy.open_connections == 0


async def test_connections_over_the_limit_get_503(destinations: Destinations) -> None:
    """The proxy serves at most ``max_connections`` at once."""
    port = destinations.tls_port
    policy = destinations.policy(max_connections=1)
    async with host_proxy(policy) as proxy, await anyio.connect_unix(proxy.socket) as first:
        await first.send(f"CONNECT open.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await first.receive()).startswith(b"HTTP/1.1 200")
        second = await raw(proxy.socket, b"CONNECT open.test:443 HTTP/1.1\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 503 too many connections through the proxy (1)")


async def test_closing_the_proxy_ends_its_connections_and_socket(
    destinations: Destinations,
) -> None:
    """After close: open tunnels see EOF, the socket file is gone, nothing is served."""
    port = destinations.tls_port
    async with host_proxy(destinations.policy()) as proxy:
        stream = await anyio.connect_unix(proxy.socket)
        await stream.send(f"CONNECT open.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await stream.receive()).startswith(b"HTTP/1.1 200")
        await proxy.runtime.aclose()
        with anyio.fail_after(10), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stream.receive()
        await stream.aclose()
        assert not proxy.socket.exists()
        assert proxy.runtime.proxy.open_connections == 0


async def test_decisions_are_logged_with_header_names_never_values(
    destinations: Destinations, caplog: pytest.LogCaptureFixture
) -> None:
    """Every decision is a log line (host, port, allowed, intercepted, names); no secret."""
    caplog.set_level(logging.INFO, logger="conjure_async")
    async with host_proxy(destinations.policy()) as proxy:
        await proxy.curl(f"{destinations.https('api.test')}/headers")
        await proxy.curl(f"{destinations.https('denied.test')}/")
    lines = [r.getMessage() for r in caplog.records if "egress.decision" in r.getMessage()]
    assert len(lines) == 2
    assert "host='api.test'" in lines[0]
    assert "intercepted=True headers=['Authorization']" in lines[0]
    assert "allowed=False" in lines[1]
    assert SECRET not in caplog.text


async def test_tls_to_the_proxy_uses_the_session_ca_limited_to_injected_hosts(
    destinations: Destinations,
) -> None:
    """The session CA is name-constrained: a leaf it signed for another name would not verify."""
    from cryptography import x509

    async with host_proxy(destinations.policy()) as proxy:
        ca = x509.load_pem_x509_certificate(proxy.runtime.proxy.ca_pem)
        bundle = (proxy.folder / "ca-bundle.pem").read_bytes()
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert [n.value for n in constraints.value.permitted_subtrees or []] == ["api.test"]
    assert proxy.runtime.proxy.ca_pem in bundle
    assert destinations.ca.read_bytes().strip() in bundle
    assert ssl.PEM_cert_to_DER_cert(proxy.runtime.proxy.ca_pem.decode())


async def test_garbage_oversized_heads_and_bad_ports_are_refused(
    destinations: Destinations,
) -> None:
    """Not HTTP: 400; a head over 64 KiB: closed; a bad port or absolute https URL: 400."""
    async with host_proxy(destinations.policy()) as proxy:
        garbage = await raw(proxy.socket, b"\x16\x03\x01 hello\r\n\r\n")
        huge = await raw(proxy.socket, b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * 70_000)
        port = await raw(proxy.socket, b"CONNECT open.test:99999 HTTP/1.1\r\n\r\n")
        https = await raw(proxy.socket, b"GET https://open.test/ HTTP/1.1\r\n\r\n")
        decisions = proxy.runtime.take("c")
    assert garbage.startswith(b"HTTP/1.1 400 not an HTTP/1.x proxy request")
    assert huge == b""
    assert port.startswith(b"HTTP/1.1 400 bad port")
    assert https.startswith(b"HTTP/1.1 400 the proxy takes CONNECT or absolute http://")
    assert decisions == []  # nothing reached a decision


async def test_bytes_sent_right_after_the_head_reach_the_destination_once(
    destinations: Destinations,
) -> None:
    """A client that sends its request right behind CONNECT gets one answer, not two."""
    head = f"CONNECT {destinations.plain} HTTP/1.1\r\n\r\n".encode()
    request = b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n"
    async with (
        host_proxy(destinations.policy()) as proxy,
        await anyio.connect_unix(proxy.socket) as stream,
    ):
        await stream.send(head + request)
        await stream.send_eof()
        received = b""
        with anyio.fail_after(30):
            async for chunk in stream:
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 Connection established")
    assert received.count(b"HTTP/1.1 200 OK") == 1
