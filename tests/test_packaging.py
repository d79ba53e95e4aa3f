"""The installed package is what a user gets: type checkers see it, its version is one.

The suite runs from the project's own venv, which ``.ci/run`` (and the
README's command) makes with ``pip install -e '.[test]'``: an editable
install. A user's program placed outside the repository, checked with the
working directory outside the repository, can only find ``conjure_async``
through that install.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import conjure_async

ROOT = Path(__file__).resolve().parent.parent

USER_PROGRAM = '''\
"""A user's program: the quick start's shapes, typed."""

import anyio

from conjure_async import Reply, Session, load_skills
from conjure_async.backends import LocalBackend
from conjure_async.testing import ScriptedModel, text_response


async def main() -> Reply:
    model = ScriptedModel([text_response("hi")])
    async with Session(LocalBackend(load_skills()), model=model) as session:
        return await session.chat("hello")


reply = anyio.run(main)
text: str = reply.text
wrong: int = reply.text  # the one error: proves mypy sees the real types, not Any
'''


def _install_is_editable() -> bool:
    # Every copy of the metadata on the path (a setuptools build leaves an egg-info in the tree).
    for dist in importlib.metadata.distributions(name="conjure-async"):
        direct_url = dist.read_text("direct_url.json")
        if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
            return True
    return False


def test_a_user_program_type_checks_strictly_against_the_install(tmp_path: Path) -> None:
    """mypy --strict on a program outside the repo resolves conjure_async through the install."""
    program = tmp_path / "user_program.py"
    program.write_text(USER_PROGRAM, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            program.name,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert _install_is_editable(), "the suite runs against the editable install of .ci/run"
    assert "Cannot find implementation" not in output, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    expected = (
        'user_program.py:18: error: Incompatible types in assignment (expression has type "str",'
        ' variable has type "int")  [assignment]'
    )
    assert errors == [expected], output


def test_the_installed_version_is_the_package_version() -> None:
    """The distribution's metadata and ``conjure_async.__version__`` agree (one source)."""
    assert importlib.metadata.version("conjure-async") == conjure_async.__version__
