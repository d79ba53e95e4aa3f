"""The Docker backend is one subpackage, one module per concept, and stays optional."""

from __future__ import annotations

import importlib
import io
import posixpath
import tarfile
from pathlib import Path

import pytest

import conjure_async.backends
from conjure_async.backends import build_image
from tests.helpers import fresh_python
from tests.support.fake_docker import fake_docker_engine

BACKENDS = Path(conjure_async.backends.__file__).parent

CONCEPTS = {
    "_backend": ["DockerBackend"],
    "_config": ["ContainerConfig", "parse_size"],
    "_container": ["Sandbox", "create_container", "remove_container"],
    "_bash": ["run_command", "stop_command"],
    "_files": ["download"],
    "_scripts": ["BASH_WRAPPER", "FILE_HELPER", "KILLER", "PREPARE"],
    "_pool": ["WarmPool"],
    "_image": ["DEFAULT_IMAGE", "build_image", "build_offline_image"],
    "_sweep": ["sweep_orphans"],
    "_durable": ["reattach", "session_of"],
    "_api": ["docker_client", "translate"],
}


@pytest.mark.parametrize("module", sorted(CONCEPTS))
def test_each_concept_has_its_module_in_backends_docker(module: str) -> None:
    """``conjure_async.backends.docker.<module>`` defines the names of its concept."""
    found = importlib.import_module(f"conjure_async.backends.docker.{module}")
    assert [name for name in CONCEPTS[module] if name not in found.__all__] == []


def test_no_docker_module_is_left_beside_the_other_backends() -> None:
    """The ``_docker*.py`` files moved into the subpackage; none is left in ``backends/``."""
    assert sorted(path.name for path in BACKENDS.glob("_docker*.py")) == []
    assert sorted(path.name for path in (BACKENDS / "docker").glob("*.py")) == sorted(
        ["__init__.py", *(f"{module}.py" for module in CONCEPTS)]
    )


def test_the_public_docker_names_load_without_aiodocker() -> None:
    """``conjure_async.backends`` and every Docker name load without importing aiodocker."""
    code = (
        "import sys, conjure_async.backends as b, conjure_async.backends.docker\n"
        "[getattr(b, n) for n in b.__all__]\n"
        "b.DockerBackend(); b.WarmPool()\n"
        "assert 'aiodocker' not in sys.modules, 'aiodocker imported'\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
    )
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr


def test_the_docker_subpackage_exports_nothing_of_its_own() -> None:
    """Users import the Docker names from ``conjure_async.backends``, the one public path."""
    from conjure_async.backends import docker

    assert docker.__all__ == []
    assert "DockerBackend" in conjure_async.backends.__all__


@pytest.mark.anyio
async def test_the_default_image_builds_from_the_packaged_dockerfile_alone() -> None:
    """``build_image()`` sends a context of one file, the subpackage's ``Dockerfile``."""
    dockerfile = (BACKENDS / "docker" / "Dockerfile").read_bytes()
    async with fake_docker_engine([{"stream": "done\n"}]) as engine:
        await build_image("sandbox:test", docker_host=engine.host)
    [context] = engine.build_contexts
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        members = {
            posixpath.normpath(member.name): tar.extractfile(member)
            for member in tar.getmembers()
            if member.isfile()
        }
        assert sorted(members) == ["Dockerfile"]
        handle = members["Dockerfile"]
        assert handle is not None
        assert handle.read() == dockerfile
