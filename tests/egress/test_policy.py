"""EgressPolicy as a value: entries, matching, injected headers, fingerprint, repr."""

from __future__ import annotations

import ipaddress

import pytest

from conjure_async import EgressPolicy
from conjure_async.egress._policy import is_private


def test_names_default_to_ports_80_and_443() -> None:
    """A name without a port allows 80 and 443 only."""
    policy = EgressPolicy(["pypi.org"])
    assert policy.match("pypi.org", 443) is not None
    assert policy.match("pypi.org", 80) is not None
    assert policy.match("pypi.org", 8443) is None
    assert policy.match("files.pypi.org", 443) is None


def test_wildcards_ports_and_case() -> None:
    """``*.suffix`` covers names below it (not itself); ``:*`` any port; names are case-blind."""
    policy = EgressPolicy(["*.pythonhosted.org", "api.example.com:8443", "any.example:*"])
    assert policy.match("Files.PythonHosted.org.", 443) is not None
    assert policy.match("pythonhosted.org", 443) is None
    assert policy.match("evilpythonhosted.org", 443) is None
    assert policy.match("api.example.com", 8443) is not None
    assert policy.match("api.example.com", 443) is None
    assert policy.match("any.example", 5432) is not None


def test_bare_addresses_need_an_address_entry() -> None:
    """A name pattern, even ``*``, never lets a bare address through."""
    policy = EgressPolicy(["*", "10.0.0.0/8:5432", "[fd00::1]:443", "192.0.2.7"])
    assert policy.match("93.184.216.34", 443) is None
    assert policy.match("10.1.2.3", 5432) is not None
    assert policy.match("10.1.2.3", 443) is None
    assert policy.match("fd00::1", 443) is not None
    assert policy.match("192.0.2.7", 80) is not None


def test_private_addresses_need_an_address_entry() -> None:
    """Loopback, private, link-local (metadata) and shared addresses are refused for names."""
    policy = EgressPolicy(["*", "10.0.0.5:443"])
    for text in ("127.0.0.1", "169.254.169.254", "10.9.9.9", "100.100.100.200", "::1",
                 "fd00:ec2::254", "::ffff:127.0.0.1", "0.0.0.0"):  # fmt: skip
        assert is_private(ipaddress.ip_address(text)), text
        assert not policy.address_allowed(ipaddress.ip_address(text), 443), text
    assert policy.address_allowed(ipaddress.ip_address("10.0.0.5"), 443)
    assert policy.address_allowed(ipaddress.ip_address("93.184.216.34"), 443)


def test_injected_hosts_are_allowed_on_their_port_only() -> None:
    """An injected host is reachable on its port (443 by default), and only there."""
    policy = EgressPolicy(inject={"api.example.com": {"Authorization": "Bearer x"}})
    assert policy.match("api.example.com", 443) is not None
    assert policy.match("api.example.com", 80) is None
    assert policy.injected_header_names("API.example.com", 443) == ("Authorization",)
    assert policy.injected_header_names("api.example.com", 80) == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow": ["bad host"]}, "not a host name"),
        ({"allow": ["a.com:99999"]}, "no valid port"),
        ({"allow": [""]}, "empty"),
        ({"inject": {"a.com": {"Bad Header": "x"}}}, "cannot be injected"),
        ({"inject": {"a.com": {"Host": "x"}}}, "cannot be injected"),
        ({"inject": {"a.com": {"X-Key": "a\r\nInjected: 1"}}}, "one line"),
        ({"inject": {"a.com": {}}}, "no headers"),
        ({"hosts": {"a.com": "not-an-ip"}}, "not an address"),
        ({"idle_timeout": 0}, "positive"),
    ],
)
def test_bad_entries_are_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    """Every unusable option raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        EgressPolicy(**kwargs)


def test_one_string_instead_of_a_list_is_refused() -> None:
    """``allow="pypi.org"`` would be read letter by letter: refused."""
    with pytest.raises(TypeError, match="list"):
        EgressPolicy("pypi.org")  # type: ignore[arg-type]


def test_repr_and_fingerprint_hold_no_header_value() -> None:
    """The value is in neither the repr nor the fingerprint; names and hosts are."""
    a = EgressPolicy(["pypi.org"], inject={"api.x.com": {"Authorization": "Bearer secret-1"}})
    b = EgressPolicy(["pypi.org"], inject={"api.x.com": {"Authorization": "Bearer secret-2"}})
    c = EgressPolicy(["pypi.org"], inject={"api.y.com": {"Authorization": "Bearer secret-1"}})
    assert "secret" not in repr(a)
    assert "Authorization" in repr(a)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert a.fingerprint != EgressPolicy(["pypi.org"]).fingerprint


def test_destinations_list_entries_then_injected_hosts() -> None:
    """What the prompt shows: the entries as written, then injected hosts not already listed."""
    policy = EgressPolicy(
        ["pypi.org", "api.x.com:443"],
        inject={"api.x.com": {"A": "1"}, "b.x.com:8443": {"A": "1"}},
    )
    assert policy.destinations() == ["pypi.org", "api.x.com:443", "b.x.com:8443"]


def test_a_kept_container_cannot_take_an_egress_policy() -> None:
    """A durable (kept) container would outlive the session proxy its policy needs: refused."""
    from conjure_async.backends import DockerBackend

    with pytest.raises(ValueError, match="keep_container"):
        DockerBackend(keep_container=True, egress=EgressPolicy(allow=["example.com"]))
