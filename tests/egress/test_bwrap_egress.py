"""LocalBackend(sandbox="bwrap", egress=...): commands under real bubblewrap, with no network
of their own, reach only the policy's destinations through the session's proxy."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conjure_async import EgressPolicy, Session
from conjure_async.backends import LocalBackend
from conjure_async.events import EgressDecision
from conjure_async.testing import (
    ScriptedModel,
    collect,
    text_response,
    tool_call,
    tool_use_response,
)
from tests.egress.conftest import SECRET, Destinations

pytestmark = pytest.mark.anyio


def _script(*commands: str) -> ScriptedModel:
    calls = [
        tool_use_response(tool_call("bash_tool", {"command": c, "description": "t"}))
        for c in commands
    ]
    return ScriptedModel([*calls, text_response("done")])


async def _run(
    policy: EgressPolicy, *commands: str, **options: Any
) -> tuple[list[str], list[Any], LocalBackend]:
    backend = LocalBackend(sandbox="bwrap", egress=policy)
    async with Session(backend, model=_script(*commands), **options) as session:
        events = await collect(session.stream("go"))
        events.append(session.system_prompt or "")
    return [e.output for e in events if getattr(e, "kind", "") == "tool_finished"], events, backend


async def test_allowed_injected_denied_direct_and_dns(
    bwrap: str, destinations: Destinations
) -> None:
    """curl and urllib go through the proxy; without it nothing connects, not even DNS."""
    py = sys.executable
    outputs, events, _ = await _run(
        destinations.policy(),
        *destinations.through_the_proxy(py),
        f"curl -sS --noproxy '*' --max-time 5 https://{destinations.plain}/ 2>&1; echo $?",
        f"{py} -c \"import socket; socket.getaddrinfo('example.com', 443)\" 2>&1 | tail -1",
    )
    destinations.check_through_the_proxy(outputs)
    assert outputs[4].strip().endswith("7")  # curl: could not connect (no network)
    assert "gaierror" in outputs[5]
    decisions = [e for e in events if isinstance(e, EgressDecision)]
    assert [(d.host, d.allowed, d.intercepted, d.headers) for d in decisions] == [
        ("api.test", True, True, ["Authorization"]),
        ("open.test", True, False, []),
        ("denied.test", False, False, []),
        ("api.test", True, True, ["Authorization"]),
    ]
    assert SECRET not in repr(events)  # no event (and no tool output) holds the value
    prompt = events[-1]
    assert "no direct network" in prompt
    assert "api.test:443" in prompt or "api.test" in prompt


async def test_pip_and_git_behave(bwrap: str, destinations: Destinations) -> None:
    """pip installs from an allowed index over HTTPS; git clones an allowed repository and
    reports the 403 for a denied one."""
    py = sys.executable
    index = f"{destinations.https('pypi.test')}/simple"
    outputs, _, _ = await _run(
        destinations.policy(),
        f"PIP_CONFIG_FILE=/dev/null PIP_USER=0 {py} -m pip install -q --no-cache-dir "
        f"--disable-pip-version-check --target pkgs --index-url {index} egress-demo 2>&1; "
        "cat pkgs/egress_demo/__init__.py",
        f"git clone -q {destinations.https('git.test')}/repo.git clone 2>&1; cat clone/README",
        f"git ls-remote {destinations.https('denied.test')}/repo.git 2>&1 | tr -d '\\r'",
    )
    assert outputs[0].strip().endswith("VALUE = 42"), outputs[0]
    assert outputs[1].strip().endswith("served through the egress proxy"), outputs[1]
    assert "CONNECT tunnel failed, response 403" in outputs[2], outputs[2]


async def test_the_secret_is_nowhere_in_the_sandbox(bwrap: str, destinations: Destinations) -> None:
    """Not in the environment, the process list, /tmp, $HOME, the work dir or the egress folder."""
    scan = (
        f"{sys.executable} - <<'EOF'\n"
        "import os\n"
        f"needle = {SECRET[::-1]!r}[::-1].encode()\n"
        "hits = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    for part in ('environ', 'cmdline'):\n"
        "        try:\n"
        "            if needle in open(f'/proc/{pid}/{part}', 'rb').read(): hits.append(pid)\n"
        "        except OSError: pass\n"
        "folders = ['/tmp', os.environ['HOME'], os.getcwd(),\n"
        "           os.path.dirname(os.environ['SSL_CERT_FILE'])]\n"
        "for folder in folders:\n"
        "    for root, _, files in os.walk(folder):\n"
        "        for name in files:\n"
        "            try:\n"
        "                if needle in open(os.path.join(root, name), 'rb').read():\n"
        "                    hits.append(name)\n"
        "            except OSError: pass\n"
        "print('secret-hits:', hits, len(folders))\n"
        "EOF"
    )
    outputs, _, _ = await _run(destinations.policy(), f"env > env.txt; {scan}")
    assert outputs[0].strip() == "secret-hits: [] 4"


async def test_decisions_are_span_events_of_the_tool_call(
    bwrap: str, destinations: Destinations
) -> None:
    """The tool call's span carries one event per decision (names, never values)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await _run(
        destinations.policy(),
        f"curl -s {destinations.https('api.test')}/ ; curl -s {destinations.https('denied.test')}/",
        tracer_provider=provider,
    )
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool bash_tool"]
    assert span.attributes is not None
    assert span.attributes["conjure.egress.denied"] == 1
    events = [dict(e.attributes or {}) for e in span.events if e.name == "egress.decision"]
    assert [(e["conjure.egress.host"], e["conjure.egress.allowed"]) for e in events] == [
        ("api.test", True),
        ("denied.test", False),
    ]
    assert events[0]["conjure.egress.headers"] == ("Authorization",)
    assert SECRET not in repr([s.to_json() for s in exporter.get_finished_spans()])


async def test_nothing_is_left_after_close(bwrap: str, destinations: Destinations) -> None:
    """The proxy's socket and folder go with the session, also when a chat is cancelled."""
    backend = LocalBackend(sandbox="bwrap", egress=destinations.policy())
    with anyio.move_on_after(60):
        async with Session(backend, model=_script("sleep 300")) as session:
            socket = backend._egress_socket
            assert socket is not None
            assert socket.is_socket()
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.chat, "go")
                while not backend._processes:  # noqa: ASYNC110 - waiting for the command
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
    assert not socket.exists()
    assert not socket.parent.exists()
    assert backend._egress is None


def test_egress_needs_the_bwrap_sandbox() -> None:
    """Without bubblewrap a policy could not hold: refused at construction."""
    with pytest.raises(ValueError, match="sandbox='bwrap'"):
        LocalBackend(egress=EgressPolicy(["pypi.org"]))


async def test_exit_codes_and_timeouts_pass_through_the_forwarder(
    bwrap: str, destinations: Destinations
) -> None:
    """The forwarder exits with the command's status; a timed-out command is stopped whole."""
    backend = LocalBackend(sandbox="bwrap", egress=destinations.policy())
    model = _script("exit 3", "kill -KILL $$", "sleep 300 & sleep 300")
    async with Session(backend, model=model, tool_timeout=2) as session:
        reply = await session.chat("go")
        assert not backend._processes
    codes = [(c.exit_code, c.is_error) for c in reply.tool_calls]
    assert codes[:2] == [(3, True), (137, True)]
    assert "[timed out after 2s" in reply.tool_calls[2].output
