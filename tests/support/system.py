"""Install the Debian packages the suite needs, when it can.

Real parts, not mocks: bubblewrap for the Local sandbox, docker.io for the
Docker backend, chromium for the browser test. On a machine where we are
root and apt-get exists, a missing package is installed once per test run;
elsewhere the tests that need it skip with a reason (under ``CI=true`` they
fail instead: a missing engine must not hide behind a skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")

_lock = threading.Lock()
_updated = False


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``), where needed parts must run."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def can_install() -> bool:
    """Whether packages can be installed here (root with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_packages(binary: str, *packages: str, timeout: float = 600) -> str | None:
    """Return the path of ``binary``, installing ``packages`` first if needed.

    Returns None when the binary is missing and cannot be installed.
    """
    global _updated  # noqa: PLW0603 - one apt-get update per process
    found = shutil.which(binary)
    if found or not can_install():
        return found
    with _lock:
        found = shutil.which(binary)
        if found:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not _updated:
            subprocess.run(
                ["apt-get", "update", "-qq"],
                check=False,
                env=env,
                timeout=timeout,
                capture_output=True,
            )
            _updated = True
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=False,
            env=env,
            timeout=timeout,
            capture_output=True,
        )
    return shutil.which(binary)


def unavailable(what: str, why: str) -> NoReturn:
    """Fail under ``CI=true`` (a needed part must run there), else skip: ``what`` cannot be had."""
    if in_ci():
        pytest.fail(f"CI=true and no {what} could be had: {why}")
    pytest.skip(f"no {what}: {why}")


def require(found: T | str, what: str) -> T:
    """``found``, a started part; a string is why it could not start (see :func:`unavailable`)."""
    if isinstance(found, str):
        unavailable(what, found)
    return found


def require_package(binary: str, package: str) -> str:
    """The path of ``binary``, its Debian ``package`` installed when missing and possible."""
    path = ensure_packages(binary, package)
    if path is None:
        unavailable(binary, f"{package} is not installed and cannot be installed here")
    return path
