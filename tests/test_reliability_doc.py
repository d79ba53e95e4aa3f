"""docs/reliability.md is kept true by the tests it names: each one exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_every_test_the_reliability_page_names_exists() -> None:
    """A renamed or deleted test makes the page lie: this fails instead."""
    references = REFERENCE.findall(PAGE.read_text(encoding="utf-8"))
    assert len(references) >= 30
    missing = []
    for file, name in references:
        path = ROOT / file
        if not path.is_file() or name not in _defined(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


def test_the_counts_on_the_page_match_its_rows() -> None:
    """Each group's heading states how many cases its table lists."""
    text = PAGE.read_text(encoding="utf-8")
    groups = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert groups
    for group in groups:
        heading, _, body = group.partition("\n")
        stated = re.search(r"\((\d+) cases?\)", heading)
        if stated is None:
            continue
        rows = [
            line
            for line in body.splitlines()
            if line.startswith("|") and not line.startswith(("| case", "|---"))
        ]
        assert int(stated.group(1)) == len(rows), heading
