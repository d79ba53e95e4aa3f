"""DockerBackend(egress=...): a container with no network but the session's proxy (real engine).

The destinations are the egress tests' real servers on loopback (see
``tests/egress/conftest.py``); the image is the offline test image plus curl.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from conjure_async import EgressPolicy, Session
from conjure_async._exceptions import SandboxUnavailableError
from conjure_async.backends import DockerBackend, WarmPool
from conjure_async.backends.docker._api import docker_client
from conjure_async.backends.docker._image import OFFLINE_TOOLS, build_offline_image
from conjure_async.events import EgressDecision
from conjure_async.testing import collect
from tests.docker.engine import Engine
from tests.docker.helpers import bash, script
from tests.egress.conftest import BEARER, SECRET, Destinations, running_destinations

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

MakeBackend = Callable[..., DockerBackend]
EGRESS_IMAGE = "conjure-async-test:egress-1"

# Finds the secret in any process's environment or command line, and in any
# file outside /proc, /sys and /dev; holds it reversed so as not to find itself.
SECRET_SCAN = f"""python3 - <<'EOF'
import os
needle = {SECRET[::-1]!r}[::-1].encode()
hits = []
for pid in os.listdir("/proc"):
    for part in ("environ", "cmdline"):
        try:
            if needle in open(f"/proc/{{pid}}/{{part}}", "rb").read():
                hits.append(f"/proc/{{pid}}/{{part}}")
        except OSError:
            pass
for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        try:
            with open(os.path.join(root, name), "rb") as f:
                if needle in f.read():
                    hits.append(os.path.join(root, name))
        except OSError:
            pass
print("secret-hits:", hits)
EOF"""


@pytest.fixture(scope="session")
def destinations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Destinations]:
    """The egress tests' servers (see ``tests/egress/conftest.py``)."""
    with running_destinations(tmp_path_factory.mktemp("egress-servers")) as running:
        yield running


@pytest.fixture(scope="session")
def egress_image(docker_engine: Engine) -> str:
    """The offline test image with curl added (built once, kept on the engine)."""
    return anyio.run(
        lambda: build_offline_image(
            EGRESS_IMAGE,
            docker_host=docker_engine.host,
            tools=(*OFFLINE_TOOLS, "curl"),
            if_missing=True,
        )
    )


@pytest.fixture
def egress_backend(
    make_backend: MakeBackend, egress_image: str, destinations: Destinations
) -> Callable[..., DockerBackend]:
    def make(**options: Any) -> DockerBackend:
        options.setdefault("egress", destinations.policy())
        return make_backend(image=egress_image, **options)

    return make


async def _run(backend: DockerBackend, *commands: str) -> tuple[list[str], list[Any]]:
    async with Session(backend, model=script(*(bash(c) for c in commands))) as session:
        events = await collect(session.stream("go"))
        prompt = session.system_prompt or ""
    outputs = [e.output for e in events if e.kind == "tool_finished"]
    return outputs, [*events, prompt]


async def test_allowed_injected_and_denied_from_inside_a_container(
    egress_backend: Callable[..., DockerBackend], destinations: Destinations
) -> None:
    """curl and urllib reach allowed hosts, get the header injected, and a 403 elsewhere."""
    commands = (
        *destinations.through_the_proxy("python3"),
        f"curl -sS http://{destinations.plain}/headers",
    )
    outputs, events = await _run(egress_backend(), *commands)
    destinations.check_through_the_proxy(outputs)
    assert json.loads(outputs[4])["Host"].startswith("127.0.0.2")
    decisions = [e for e in events if isinstance(e, EgressDecision)]
    assert [(d.host, d.allowed, d.intercepted) for d in decisions] == [
        ("api.test", True, True),
        ("open.test", True, False),
        ("denied.test", False, False),
        ("api.test", True, True),
        ("127.0.0.2", True, False),
    ]
    assert all(d.call_id for d in decisions)
    assert "api.test" in events[-1]
    assert "only these destinations are reachable" in events[-1]


async def test_direct_connections_and_dns_fail_and_the_secret_is_nowhere(
    egress_backend: Callable[..., DockerBackend], destinations: Destinations
) -> None:
    """Without the proxy nothing connects; no process, file or variable holds the secret."""
    commands = (
        f"curl -sS --noproxy '*' --max-time 5 {destinations.https('127.0.0.3')}/ 2>&1; echo $?",
        "python3 -c \"import socket; socket.getaddrinfo('example.com', 443)\" 2>&1 | tail -1",
        "env | grep -ci proxy; ls /run/egress/ca-bundle.pem; ls /run/egress 2>&1",
        SECRET_SCAN,
    )
    outputs, _ = await _run(egress_backend(), *commands)
    assert outputs[0].strip().endswith("7")  # curl: couldn't connect
    assert "gaierror" in outputs[1]
    assert outputs[2].splitlines()[:3] == [
        "6",
        "/run/egress/ca-bundle.pem",
        "ls: cannot open directory '/run/egress': Permission denied",  # the socket's name is secret
    ]
    assert outputs[3].strip() == "secret-hits: []"


async def test_nothing_is_left_after_close(
    egress_backend: Callable[..., DockerBackend], docker_engine: Engine
) -> None:
    """The container, the egress folder and the proxy's socket are gone after the session."""
    backend = egress_backend()
    async with Session(backend, model=script(bash("true"))) as session:
        await session.chat("go")
        sandbox = backend._sandbox
        assert sandbox is not None
        assert sandbox.egress_folder
        assert sandbox.egress_socket
        folder = anyio.Path(sandbox.egress_folder)
        assert await (folder / sandbox.egress_socket).is_socket()
    async with docker_client(docker_engine.host) as client:
        left = await client.containers.list(all=True, filters={"id": [sandbox.id]})
    assert left == []
    assert not await folder.exists()


def _tmp() -> Any:
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir())


async def test_cancelled_session_leaves_nothing(
    egress_backend: Callable[..., DockerBackend],
) -> None:
    """Cancelling a chat mid-command removes the container, its folder and the proxy."""
    backend = egress_backend()
    with anyio.move_on_after(60) as scope:
        session = Session(backend, model=script(bash("sleep 300")))
        async with session, anyio.create_task_group() as tg:
            tg.start_soon(session.chat, "go")
            while backend.container_id is None:  # noqa: ASYNC110 - waiting for the container
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert backend._egress is None
    assert not any(p.name.startswith("conjure-egress-") for p in _tmp().iterdir())


async def test_warm_pool_keys_containers_by_policy(
    egress_backend: Callable[..., DockerBackend], docker_engine: Engine, destinations: Destinations
) -> None:
    """A pooled container serves a session with the same policy; another policy misses."""
    async with WarmPool(size=1, docker_host=docker_engine.host) as pool:
        first = egress_backend(pool=pool)
        await pool.prewarm(first)
        outputs, _ = await _run(first, f"curl -sS {destinations.https('api.test')}/headers")
        other = egress_backend(pool=pool, egress=EgressPolicy(["pypi.org"]))
        assert other.config.key != first.config.key
        assert (await pool.acquire(other)) is None
    assert first.from_pool
    assert json.loads(outputs[0])["Authorization"] == BEARER
    assert not any(p.name.startswith("conjure-egress-") for p in _tmp().iterdir())


async def test_remote_engine_is_refused_at_open(egress_image: str) -> None:
    """An engine reached over TCP could not see the socket: a clear error, no network opened."""
    backend = DockerBackend(
        image=egress_image, docker_host="tcp://127.0.0.1:9", egress=EgressPolicy(["pypi.org"])
    )
    with pytest.raises(SandboxUnavailableError, match="needs the Docker engine on this machine"):
        async with Session(backend, model=script()):
            pass


def test_egress_needs_network_none() -> None:
    """A policy with a network mode is refused: the policy must be the only way out."""
    with pytest.raises(ValueError, match="network='none'"):
        DockerBackend(network="bridge", egress=EgressPolicy(["pypi.org"]))


async def test_sweep_removes_an_orphans_egress_folder(
    egress_backend: Callable[..., DockerBackend], docker_engine: Engine
) -> None:
    """A container left behind takes its egress folder with it when swept."""
    from conjure_async.backends.docker._container import create_container
    from conjure_async.backends.docker._sweep import sweep_orphans

    backend = egress_backend()
    async with docker_client(docker_engine.host) as client:
        sandbox = await create_container(client, backend.config, "left-behind")
    assert sandbox.egress_folder is not None
    assert await anyio.Path(sandbox.egress_folder).exists()
    removed = await sweep_orphans(docker_engine.host, session_id="left-behind", include_live=True)
    assert removed == [sandbox.id]
    assert not await anyio.Path(sandbox.egress_folder).exists()
