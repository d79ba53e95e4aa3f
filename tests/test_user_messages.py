"""What the library says to its users names only public functions and commands.

An error message, a log line or a hint that names
``conjure_async.backends.docker._image.build_offline_image`` sends the user to
a module they should not import (and that may move). Every string the package
can show says ``conjure_async.backends.build_offline_image`` or
``conjure docker build --offline`` instead.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "conjure_async"

DOTTED = re.compile(r"\bconjure_async(?:\.\w+)+")
PRIVATE = re.compile(r"\bconjure_async(?:\.\w+)*\._[a-z]\w*")
MODULE_PATH = re.compile(r"conjure_async(?:\.\w+)+")


def public_names_problems(text: str) -> list[str]:
    """Each ``conjure_async.x.y`` in ``text`` that is private or does not resolve."""
    problems = []
    for name in DOTTED.findall(text):
        if PRIVATE.fullmatch(name):
            problems.append(f"{name}: private")
            continue
        module, _, attribute = name.rpartition(".")
        try:
            found = hasattr(importlib.import_module(module), attribute)
        except ImportError:
            found = False
        if not found:
            try:
                importlib.import_module(name)
            except ImportError:
                problems.append(f"{name}: does not resolve")
    return problems


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string constants that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ) and (
            node.body
            and isinstance(first := node.body[0], ast.Expr)
            and isinstance(first.value, ast.Constant)
        ):
            found.add(id(first.value))
    return found


def _shown_strings() -> Iterator[tuple[str, int, str]]:
    """Every string literal of the package but docstrings and bare module paths (imports)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
                and not MODULE_PATH.fullmatch(node.value)
            ):
                yield str(path.relative_to(ROOT)), node.lineno, node.value


def test_no_string_the_package_shows_names_a_private_module() -> None:
    """No message, hint or log text in the package names ``conjure_async...._private``."""
    found = [
        f"{path}:{line}: {match}"
        for path, line, text in _shown_strings()
        for match in PRIVATE.findall(text)
    ]
    assert found == []


CONTRIBUTOR_DOCS = {"docs/contributing.md", "docs/architecture.md"}
"""Pages for people changing the library: they name its private modules on purpose (as the ADRs)."""


def _user_texts() -> Iterator[tuple[str, str]]:
    """The README, the user docs and the examples (what a user reads and copies)."""
    paths = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "examples").rglob("*.py")),
    ]
    for path in paths:
        relative = str(path.relative_to(ROOT))
        if relative not in CONTRIBUTOR_DOCS:
            yield relative, path.read_text(encoding="utf-8")


def test_user_docs_and_examples_name_only_public_modules() -> None:
    """What a user reads or copies imports ``conjure_async.testing``, not ``..._fake_server``."""
    found = [f"{path}: {match}" for path, text in _user_texts() for match in PRIVATE.findall(text)]
    assert any(path == "README.md" for path, _ in _user_texts())
    assert found == []


def test_the_scan_sees_f_strings_and_constants() -> None:
    """The scan reads f-string parts and module constants, and skips import paths."""
    texts = [text for _, _, text in _shown_strings()]
    assert any("conjure docker build" in text for text in texts)
    assert PRIVATE.findall("run `conjure_async.backends.docker._image.build(tag)`")
    assert not PRIVATE.findall("run `conjure_async.backends.build_offline_image(tag)`")
    assert not PRIVATE.findall("conjure_async.__version__")


def test_the_missing_image_hint_names_public_ways_to_build() -> None:
    """The hint of a missing sandbox image names the CLI command and the public function."""
    from conjure_async.backends.docker._api import BUILD_HINT

    assert "conjure docker build --offline" in BUILD_HINT
    assert "conjure_async.backends.build_offline_image" in BUILD_HINT
    assert public_names_problems(BUILD_HINT) == []


def test_a_translated_missing_image_error_names_public_ways_to_build() -> None:
    """The engine's 404 for an image becomes ImageNotFoundError with public names only."""
    aiodocker = pytest.importorskip("aiodocker")
    from conjure_async import ImageNotFoundError
    from conjure_async.backends.docker._api import translate

    vendor = aiodocker.DockerError(404, {"message": "No such image: sandbox:missing"})
    error = translate(vendor, host="unix:///nowhere.sock", image="sandbox:missing")
    assert isinstance(error, ImageNotFoundError)
    assert "conjure docker build --offline" in str(error)
    assert "conjure_async.backends.build_offline_image" in str(error)
    assert public_names_problems(str(error)) == []


def test_the_resolver_finds_a_wrong_name() -> None:
    """The public-name check of a message can fail (private and non-existent names)."""
    assert public_names_problems("use conjure_async.backends.build_offline_image") == []
    assert public_names_problems("use conjure_async.backends.docker._image.x") != []
    assert public_names_problems("use conjure_async.backends.no_such_thing") != []
