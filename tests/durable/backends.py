"""The backend factories of the durable tests (one module: in-process and worker processes)."""

from __future__ import annotations

import hashlib
from typing import Any

from conjure_async.backends import Backend, LocalBackend, NativeBackend, tool


@tool
async def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
async def blob(size: int, seed: int) -> str:
    """Return ``size`` characters of text that differ per seed.

    Args:
        size: How many characters.
        seed: Makes each result different.
    """
    unit = hashlib.sha256(str(seed).encode()).hexdigest()
    return (unit * (size // len(unit) + 1))[:size]


def factories() -> dict[str, Any]:
    """A factory per kind: ``config -> Backend``."""

    def native(config: dict[str, Any]) -> Backend:
        del config
        return NativeBackend(add, blob)

    def local(config: dict[str, Any]) -> Backend:
        return LocalBackend(workdir=config["workdir"], containment="subreaper")

    def docker(config: dict[str, Any]) -> Backend:
        from conjure_async.backends import DockerBackend

        return DockerBackend(
            image=config["image"], docker_host=config["docker_host"], keep_container=True
        )

    return {"native": native, "local": local, "docker": docker}
