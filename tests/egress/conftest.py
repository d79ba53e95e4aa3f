"""Fixtures for the egress tests: real destinations on loopback, a policy, a host-side forwarder.

``destinations`` starts ``servers.py`` in a subprocess: plain HTTP on
127.0.0.2:80 and HTTPS on 127.0.0.3:443 (a test CA) when this process may
bind those ports, else free ports on the same addresses. The test names
(``api.test``, ``open.test``...) reach them through the policy's ``hosts``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conjure_async import EgressPolicy
from tests.local.conftest import bwrap  # noqa: F401 - the fixture of test_bwrap_egress.py

SECRET = "sk-egress-test-7f3a9c1e5b"
"""The injected credential: must arrive at api.test and appear nowhere in a sandbox."""

BEARER = "sha256:" + hashlib.sha256(f"Bearer {SECRET}".encode()).hexdigest()
"""How the test servers echo ``Authorization: Bearer SECRET`` (they never echo a credential)."""
KEY = "sha256:" + hashlib.sha256(SECRET.encode()).hexdigest()
"""How they echo ``X-Api-Key: SECRET``."""

PLAIN_ADDRESS = "127.0.0.2"
TLS_ADDRESS = "127.0.0.3"


@dataclass(frozen=True)
class Destinations:
    """The running test servers."""

    folder: Path
    plain_port: int
    tls_port: int

    @property
    def ca(self) -> Path:
        return self.folder / "test-ca.pem"

    @property
    def plain(self) -> str:
        return f"{PLAIN_ADDRESS}:{self.plain_port}"

    def https(self, name: str) -> str:
        port = "" if self.tls_port == 443 else f":{self.tls_port}"
        return f"https://{name}{port}"

    def policy(self, **options: object) -> EgressPolicy:
        """The tests' policy: open.test tunnelled, api.test injected, 127.0.0.2 plain."""
        tls = f":{self.tls_port}"
        settings: dict[str, object] = {
            "allow": [f"open.test{tls}", f"pypi.test{tls}", f"git.test{tls}", self.plain,
                      f"{TLS_ADDRESS}{tls}"],
            "inject": {f"api.test{tls}": {"Authorization": f"Bearer {SECRET}"}},
            "upstream_ca": self.ca,
            "hosts": dict.fromkeys(
                ("api.test", "open.test", "denied.test", "pypi.test", "git.test"), TLS_ADDRESS
            ),
        }  # fmt: skip
        settings.update(options)
        return EgressPolicy(**settings)  # type: ignore[arg-type]

    def through_the_proxy(self, python: str) -> tuple[str, str, str, str]:
        """Commands a sandbox runs against :meth:`policy` (see :meth:`check_through_the_proxy`).

        curl to the injected api.test, the tunnelled open.test and the denied
        denied.test, then Python's urllib to api.test.
        """
        api, open_, denied = (self.https(n) for n in ("api.test", "open.test", "denied.test"))
        return (
            f"curl -sS {api}/headers",
            f"curl -sS {open_}/headers",
            f"curl -sS -v {denied}/ 2>&1 | tr -d '\\r' | grep -o '403 Blocked.*'",
            f"{python} -c \"import urllib.request as u; print(u.urlopen('{api}/headers').read())\"",
        )

    def check_through_the_proxy(self, outputs: list[str]) -> None:
        """The header was injected for api.test only; denied.test got the policy's 403."""
        assert json.loads(outputs[0])["Authorization"] == BEARER
        assert "Authorization" not in json.loads(outputs[1])
        assert (
            outputs[2].strip()
            == f"403 Blocked by egress policy: host denied.test:{self.tls_port} is not allowed"
        )
        assert BEARER in outputs[3]


def _wheel(folder: Path) -> None:
    """A tiny package ``egress-demo`` in a PEP 503 index under ``www/simple``."""
    name = "egress_demo-1.0-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("egress_demo/__init__.py", "VALUE = 42\n")
        wheel.writestr(
            "egress_demo-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: egress-demo\nVersion: 1.0\n",
        )
        wheel.writestr(
            "egress_demo-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(
            "egress_demo-1.0.dist-info/RECORD",
            "egress_demo/__init__.py,,\negress_demo-1.0.dist-info/METADATA,,\n"
            "egress_demo-1.0.dist-info/WHEEL,,\negress_demo-1.0.dist-info/RECORD,,\n",
        )
    index = folder / "www" / "simple" / "egress-demo"
    index.mkdir(parents=True)
    (index / name).write_bytes(buffer.getvalue())
    (index / "index.html").write_text(f'<html><body><a href="{name}">{name}</a></body></html>\n')


def _git_repository(folder: Path) -> None:
    """A bare repository served over git's dumb HTTP protocol at ``www/repo.git``."""
    work = folder / "repo-work"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "HOME": str(folder),
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "README").write_text("served through the egress proxy\n")
    subprocess.run(["git", "-C", str(work), "add", "README"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "one"], check=True, env=env)
    bare = folder / "www" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, env=env)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True, env=env)


def _start(folder: Path, plain: int, tls: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("servers.py")), str(folder),
         PLAIN_ADDRESS, str(plain), TLS_ADDRESS, str(tls)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline()


@contextlib.contextmanager
def running_destinations(folder: Path) -> Iterator[Destinations]:
    """Start the test servers with their files in ``folder``; stop them on exit."""
    (folder / "www").mkdir()
    folder.chmod(0o755)
    _wheel(folder)
    _git_repository(folder)
    process, line = _start(folder, 80, 443)
    if not line.startswith("ready"):  # 80/443 taken (or not ours to bind): free ports
        _stop(process)
        process, line = _start(folder, 0, 0)
    if not line.startswith("ready"):
        _stop(process)
        raise AssertionError(f"the test servers did not start: {line}")
    _, plain, tls = line.split()
    try:
        yield Destinations(folder, int(plain), int(tls))
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def destinations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Destinations]:
    """The plain and HTTPS test servers (127.0.0.2:80 and 127.0.0.3:443 when possible)."""
    with running_destinations(tmp_path_factory.mktemp("egress-servers")) as running:
        yield running
