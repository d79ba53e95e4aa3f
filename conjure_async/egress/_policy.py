"""The egress policy: which destinations a sandbox may reach, and what is added on the way.

:class:`EgressPolicy` is a value: parsed and checked once, compared by its
:attr:`~EgressPolicy.fingerprint` (hosts, ports and header *names*, never a
header value), and asked :meth:`~EgressPolicy.match` for one destination.
Resolving names and checking the addresses they resolve to is the proxy's
job (:mod:`._proxy`), with :meth:`~EgressPolicy.address_allowed`.

Entry forms (``allow=[...]``), ports default to 80 and 443::

    pypi.org                 that name, ports 80 and 443
    pypi.org:443             that name, port 443
    *.pythonhosted.org       any name below it (not the name itself)
    api.example.com:*        any port
    *                        any name (never a bare address, never a private one)
    10.1.2.3:8080            that address (bare-address requests, and names resolving to it)
    10.0.0.0/8               that network, ports 80 and 443
    [fd00::1]:443            an IPv6 address; ``[fd00::/8]:443`` a network with a port
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EgressPolicy", "Rule", "is_private", "parse_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = frozenset({80, 443})
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip


def parse_address(text: str) -> IPAddress | None:
    """An IP address from ``text`` (brackets allowed around IPv6), or ``None``."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_private(address: IPAddress) -> bool:
    """Whether ``address`` is not a public unicast address (private, loopback, metadata...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _check_name(name: str, entry: str) -> None:
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"egress policy: {entry!r} is not a host name, address or pattern")


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed ``allow`` entry."""

    entry: str
    """The entry as written."""
    name: str | None
    """An exact host name, ``*.suffix``, or ``*``; ``None`` for an address rule."""
    network: IPNetwork | None
    """The addresses an address rule covers."""
    ports: frozenset[int] | None
    """Allowed ports; ``None``: any."""

    @classmethod
    def parse(cls, entry: str) -> Rule:
        """Parse one entry (see the module docstring for the forms).

        Raises:
            ValueError: the entry is not one of the forms.
        """
        text = entry.strip().lower()
        if not text:
            raise ValueError("egress policy: an empty allow entry")
        host, ports = text, None
        try:  # a bare address or network (IPv6 ones contain colons)
            return cls(entry, None, ipaddress.ip_network(text, strict=False), DEFAULT_PORTS)
        except ValueError:
            pass
        if text.startswith("["):
            inside, _, rest = text[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise ValueError(f"egress policy: cannot read {entry!r}")
            host, ports = inside, _ports(rest[1:], entry) if rest else None
        elif ":" in text:
            host, _, port = text.rpartition(":")
            ports = _ports(port, entry)
        if ports is None and not text.endswith(":*"):
            ports = DEFAULT_PORTS
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            return cls(entry, None, network, ports)
        name = _normalize_host(host)
        if name != "*":
            _check_name(name.removeprefix("*."), entry)
        return cls(entry, name, None, ports)

    def port_ok(self, port: int) -> bool:
        """Whether this rule allows ``port``."""
        return self.ports is None or port in self.ports

    def name_ok(self, host: str) -> bool:
        """Whether this name rule covers the (normalized) host name ``host``."""
        if self.name is None:
            return False
        if self.name == "*":
            return True
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name


def _ports(text: str, entry: str) -> frozenset[int] | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress policy: {entry!r} has no valid port (1-65535 or *)")
    return frozenset({int(text)})


def _split_target(target: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) into its parts; port 443 when missing."""
    if target.startswith("["):
        inside, _, rest = target[1:].partition("]")
        return inside, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 443
    host, sep, port = target.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return target, 443


class EgressPolicy:
    """Which network destinations a sandbox may reach, and credentials added on the way.

    The sandbox keeps no network of its own: its programs reach the world
    through a proxy on the host, which lives and dies with the session and
    lets through only what this policy allows. Everything else is answered
    ``403`` with the reason (naming the policy) in the status line. Names
    that resolve to private, loopback, link-local (cloud metadata) or other
    non-public addresses are refused unless an address entry covers them.
    See ``docs/network-policy.md``.

    Args:
        allow: Destinations, e.g. ``"pypi.org"``, ``"*.pythonhosted.org"``,
            ``"api.example.com:8443"``, ``"10.0.0.5:5432"``, ``"10.0.0.0/8"``
            (ports 80 and 443 unless given; ``host:*`` for any port).
        inject: Headers the proxy adds to requests for named hosts
            (``{"api.example.com": {"Authorization": "Bearer ..."}}``; a key
            may carry a port, default 443). Those hosts are allowed too. Over
            HTTPS the proxy terminates TLS with a per-session certificate
            authority limited to these hosts, which the sandbox trusts; the
            values never enter the sandbox, logs, events or spans.
        inject_http: Also inject over plain HTTP (the value then crosses the
            network unencrypted); without it, plain-HTTP requests to an
            injected host are refused.
        upstream_ca: A PEM file of extra certificate authorities to trust for
            the destinations (a corporate CA, a test CA): the proxy verifies
            intercepted hosts against it and the system store, and the
            sandbox's CA bundle includes it.
        hosts: Fixed addresses for names (``{"api.internal": "10.0.0.7"}``),
            used instead of DNS, like curl's ``--resolve``.
        name: A name for this policy in 403 answers (``Blocked by egress
            policy 'NAME': ...``).
        idle_timeout: Seconds a proxied connection may stay silent before it
            is closed.
        max_connections: Proxied connections open at once, per session
            (more are answered ``503``).

    Raises:
        ValueError: an entry, host, header name or value cannot be used.
    """

    __slots__ = (
        "_inject",
        "allow",
        "hosts",
        "idle_timeout",
        "inject_http",
        "max_connections",
        "name",
        "rules",
        "upstream_ca",
    )

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        inject: Mapping[str, Mapping[str, str]] | None = None,
        inject_http: bool = False,
        upstream_ca: str | os.PathLike[str] | None = None,
        hosts: Mapping[str, str] | None = None,
        name: str | None = None,
        idle_timeout: float = 300.0,
        max_connections: int = 256,
    ) -> None:
        if isinstance(allow, str):
            raise TypeError("allow must be a list of entries, not one string")
        self.allow: tuple[str, ...] = tuple(allow)
        """The entries as given."""
        self.rules: tuple[Rule, ...] = tuple(Rule.parse(entry) for entry in self.allow)
        """The parsed entries."""
        self._inject: dict[tuple[str, int], tuple[tuple[str, str], ...]] = {}
        for target, headers in (inject or {}).items():
            host, port = _split_target(_normalize_host(target))
            if parse_address(host) is None:
                _check_name(host, target)
            if not headers:
                raise ValueError(f"egress policy: inject[{target!r}] has no headers")
            checked = []
            for header, value in headers.items():
                if not _TOKEN.match(header) or header.lower() in _HOP_BY_HOP:
                    raise ValueError(f"egress policy: {header!r} cannot be injected")
                if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
                    raise ValueError(
                        f"egress policy: the value of {header!r} for {target!r} must be "
                        "one line of text"
                    )
                checked.append((header, value))
            self._inject[(host, port)] = tuple(checked)
        self.inject_http = inject_http
        """Whether credentials may be injected over plain HTTP."""
        self.upstream_ca = str(Path(upstream_ca).resolve()) if upstream_ca is not None else None
        """Extra CA certificates (PEM file) trusted for destinations."""
        self.hosts: dict[str, IPAddress] = {}
        """Fixed addresses for names, used instead of DNS."""
        for host, address in (hosts or {}).items():
            parsed = parse_address(address)
            if parsed is None:
                raise ValueError(f"egress policy: hosts[{host!r}] = {address!r} is not an address")
            self.hosts[_normalize_host(host)] = parsed
        if name is not None and (not name.strip() or any(c in name for c in "\r\n")):
            raise ValueError("egress policy: name must be one non-empty line")
        self.name = name
        """The policy's name in 403 answers, if any."""
        if idle_timeout <= 0 or max_connections < 1:
            raise ValueError("egress policy: idle_timeout and max_connections must be positive")
        self.idle_timeout = float(idle_timeout)
        self.max_connections = int(max_connections)

    def __repr__(self) -> str:
        injected = {f"{h}:{p}": [n for n, _ in hs] for (h, p), hs in self._inject.items()}
        return f"EgressPolicy(allow={list(self.allow)!r}, inject={injected!r} (values hidden))"

    @property
    def injected_hosts(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every host that gets headers injected."""
        return list(self._inject)

    def injected_header_names(self, host: str, port: int) -> tuple[str, ...]:
        """The names of the headers added for ``host:port`` (empty when none)."""
        return tuple(name for name, _ in self._inject.get((_normalize_host(host), port), ()))

    def injected_headers(self, host: str, port: int) -> tuple[tuple[str, str], ...]:
        """The headers (names and values) added for ``host:port``; for the proxy only."""
        return self._inject.get((_normalize_host(host), port), ())

    @property
    def fingerprint(self) -> str:
        """A short hash of everything but the header values (equal policies, equal prints)."""
        data = {
            "allow": [r.entry.strip().lower() for r in self.rules],
            "inject": sorted(
                f"{h}:{p}:{','.join(sorted(n.lower() for n, _ in hs))}"
                for (h, p), hs in self._inject.items()
            ),
            "inject_http": self.inject_http,
            "upstream_ca": self.upstream_ca,
            "hosts": sorted(f"{k}={v}" for k, v in self.hosts.items()),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def needs_ca(self) -> bool:
        """Whether the sandbox needs a CA bundle (hosts intercepted, or extra CAs)."""
        return bool(self._inject) or self.upstream_ca is not None

    def destinations(self) -> list[str]:
        """What the model is told it may reach: the entries, then the injected hosts."""
        shown = list(self.allow)
        for host, port in self._inject:
            label = f"{host}:{port}" if port != 443 else host
            if label not in shown and f"{host}:443" not in shown:
                shown.append(label)
        return shown

    def match(self, host: str, port: int) -> Rule | None:
        """The rule letting ``host:port`` through before resolution, or ``None``.

        A bare address needs an address rule; a name needs a name rule (its
        addresses are checked after resolution with :meth:`address_allowed`).
        An injected host is allowed on its port.
        """
        host = _normalize_host(host)
        address = parse_address(host)
        if address is not None:
            return self._address_rule(address, port)
        if (host, port) in self._inject:
            return Rule(f"{host}:{port}", host, None, frozenset({port}))
        for rule in self.rules:
            if rule.name_ok(host) and rule.port_ok(port):
                return rule
        return None

    def _address_rule(self, address: IPAddress, port: int) -> Rule | None:
        for rule in self.rules:
            if rule.network is not None and address in rule.network and rule.port_ok(port):
                return rule
        if (str(address), port) in self._inject:
            net = ipaddress.ip_network(address)
            return Rule(f"{address}:{port}", None, net, frozenset({port}))
        return None

    def address_allowed(self, address: IPAddress, port: int) -> bool:
        """Whether a name may connect to ``address``: public, or covered by an address rule."""
        return not is_private(address) or self._address_rule(address, port) is not None
