"""The documentation site builds in strict mode, and its API reference is complete.

Complete means: every name a public package or module exports (its
``__all__``) has its own entry in the rendered reference, under that package
or under another public one exporting the same object; and no private module
(``conjure_async._exceptions``, ``models._base``) is rendered in their place.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent

PUBLIC_MODULES = [
    "conjure_async",
    "conjure_async.anthropic",
    "conjure_async.backends",
    "conjure_async.events",
    "conjure_async.mcp",
    "conjure_async.messages",
    "conjure_async.models",
    "conjure_async.pricing",
    "conjure_async.skills",
    "conjure_async.store",
    "conjure_async.temporal",
    "conjure_async.testing",
]
"""Every public package and module: the names in their ``__all__`` are the public API."""


def _public_names(module: object) -> list[str]:
    """``__all__``, or for a module without one its own public definitions."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    own = getattr(module, "__name__", "")
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not isinstance(obj, TypeVar)
        and getattr(obj, "__module__", None) == own
    ]


_ID = re.compile(r'id="(conjure_async(?:\.[A-Za-z0-9_]+)*)"')
_MISSING = object()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _reference_ids(site: Path) -> set[str]:
    ids: set[str] = set()
    for page in (site / "reference").rglob("index.html"):
        ids.update(_ID.findall(page.read_text(encoding="utf-8")))
    return ids


def test_mkdocs_builds_strict(site: Path) -> None:
    """``mkdocs build --strict`` succeeds (no broken reference) and writes the pages."""
    assert (site / "index.html").is_file()
    assert (site / "reference" / "session" / "index.html").is_file()
    assert (site / "architecture" / "index.html").is_file()


def test_every_public_name_has_an_entry_in_the_reference(site: Path) -> None:
    """Each name of each public ``__all__`` is rendered, here or where a public package has it."""
    ids = _reference_ids(site)
    modules = {name: importlib.import_module(name) for name in PUBLIC_MODULES}
    missing = []
    for module_name, module in modules.items():
        for name in _public_names(module):
            obj = getattr(module, name)
            homes = [
                other
                for other, candidate in modules.items()
                if getattr(candidate, name, _MISSING) is obj
            ]
            if not any(f"{home}.{name}" in ids for home in homes):
                missing.append(f"{module_name}.{name}")
    assert missing == []


def test_no_private_module_is_rendered(site: Path) -> None:
    """The reference shows public paths only: no ``conjure_async._x`` or ``pkg._x`` entry."""
    private = sorted(i for i in _reference_ids(site) if re.search(r"\._[a-z]", i))
    assert private == []


def test_reference_pages_name_no_private_module() -> None:
    """No ``::: conjure_async...`` directive in docs/reference points into a private module."""
    directives = [
        (page.name, line)
        for page in sorted((ROOT / "docs" / "reference").glob("*.md"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith(":::")
    ]
    assert directives, "the reference renders nothing"
    assert [(page, line) for page, line in directives if "._" in line] == []


def _nav_pages(entry: object) -> set[str]:
    """Every page path in a piece of mkdocs.yml's ``nav`` (sections nest lists of mappings)."""
    if isinstance(entry, str):
        return set() if "://" in entry else {entry}
    if isinstance(entry, list):
        return set().union(*(_nav_pages(item) for item in entry))
    if isinstance(entry, dict):
        return set().union(*(_nav_pages(value) for value in entry.values()))
    return set()


def test_every_docs_page_and_adr_is_in_the_nav() -> None:
    """Each Markdown page under docs/ (every ADR included) is reachable from mkdocs.yml's nav."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = _nav_pages(config["nav"])
    docs = ROOT / "docs"
    pages = {path.relative_to(docs).as_posix() for path in docs.rglob("*.md")}
    assert {p for p in pages if p.startswith("adr/")}  # the ADRs are found where expected
    assert sorted(pages - in_nav) == []
    assert sorted(in_nav - pages) == []  # and the nav names no page that is gone
