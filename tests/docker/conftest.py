"""Fixtures for the Docker backend tests: a real engine and an offline-built image.

The session-scoped ``docker_engine`` fixture finds or starts an engine (see
``engine.py``), builds the test image once, and on teardown fails the suite
if any container labelled ``created-by=conjure_async`` is left, then stops
the daemon only if it started it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conjure_async.backends import DockerBackend
from conjure_async.skills import Skill, load_skills
from tests.docker.engine import (
    Engine,
    build_bare_image,
    build_test_image,
    find_or_start_engine,
    leftover_containers,
    remove_containers,
    stop_engine,
)
from tests.support.system import require


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    found = require(find_or_start_engine(), "Docker engine")
    try:
        build_test_image(found)
        yield found
        left = leftover_containers(found)
        if left:
            remove_containers(found)
            pytest.fail(f"containers left after the Docker tests: {left}")
    finally:
        stop_engine(found)


@pytest.fixture(scope="session")
def bare_image(docker_engine: Engine) -> str:
    """An image with no /workspace directory, like a stock ``python:3.12-slim``."""
    return build_bare_image(docker_engine)


@pytest.fixture(scope="session")
def docker_skills(tmp_path_factory: pytest.TempPathFactory) -> list[Skill]:
    root = tmp_path_factory.mktemp("skills")
    skill = root / "demo"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: demo\ndescription: A demo skill for the Docker tests.\n---\n"
        "Run scripts/hello.py.\n"
    )
    (skill / "scripts" / "hello.py").write_text("print('hello from the skill')\n")
    for path in (root, skill, skill / "scripts"):
        path.chmod(0o755)
    return list(load_skills(root))


@pytest.fixture
def make_backend(docker_engine: Engine, docker_skills: list[Skill]) -> Callable[..., DockerBackend]:
    def make(**options: Any) -> DockerBackend:
        options.setdefault("image", docker_engine.image)
        options.setdefault("docker_host", docker_engine.host)
        return DockerBackend(docker_skills, **options)

    return make


def skill_dir(skills: list[Skill]) -> Path:
    return skills[0].path
