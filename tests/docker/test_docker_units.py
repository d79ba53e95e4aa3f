"""Docker backend behaviour that needs no engine: errors, parsing, stream splitting."""

from __future__ import annotations

import sys

import pytest

from conjure_async import Session
from conjure_async._exceptions import DockerUnavailableError, MissingDependencyError
from conjure_async.backends import DockerBackend
from conjure_async.backends.docker._api import import_aiodocker
from conjure_async.backends.docker._bash import partial_marker as _partial_marker
from conjure_async.backends.docker._config import parse_size
from conjure_async.backends.docker._scripts import trailer_marker
from conjure_async.testing import ScriptedModel


@pytest.mark.anyio
async def test_unreachable_engine_names_the_socket_tried() -> None:
    backend = DockerBackend(docker_host="unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailableError, match=r"unix:///nonexistent/docker\.sock"):
        async with Session(backend, model=ScriptedModel([])):
            pass


def test_missing_aiodocker_gives_the_pip_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiodocker", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conjure-async\[docker\]'"):
        import_aiodocker()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512m", 512 * 1024**2), ("1g", 1024**3), ("64MiB", 64 * 1024**2), (1000, 1000)],
)
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_partial_marker_holds_back_only_a_possible_marker_start() -> None:
    marker = trailer_marker("abc")
    assert _partial_marker(b"plain output\n", marker) == 0
    assert _partial_marker(b"output" + marker[:5], marker) == 5
    assert _partial_marker(b"a\x00b", marker) == 0


def test_pool_and_backend_must_share_the_engine() -> None:
    from conjure_async.backends import WarmPool

    with pytest.raises(ValueError, match="same docker_host"):
        DockerBackend(pool=WarmPool(docker_host="unix:///a.sock"), docker_host="unix:///b.sock")
