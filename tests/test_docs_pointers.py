"""Every pointer to a document is true, and no document names one machine's paths.

mkdocs (``--strict``, in ``test_docs_site.py``) checks the Markdown links of
the site; this checks the pointers it cannot see: ``docs/...md`` and
``SOMETHING.md`` named in code, docstrings, the README and the ADRs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "conjure_async").rglob("*.py")),
    *sorted((ROOT / "examples").rglob("*.py")),
    *sorted((ROOT / "benchmarks").rglob("*.py")),
    ROOT / "noxfile.py",
]
POINTER = re.compile(r"(?<![\w/])((?:docs/[\w./-]+|[A-Z][A-Z0-9_-]+)\.md)\b")
NOT_POINTERS = {"SKILL.md"}  # the Agent Skills file format, named everywhere, not a document
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|root)/[\w.-]+")


def _pointers() -> list[tuple[str, str]]:
    found = []
    for source in SOURCES:
        for match in POINTER.finditer(source.read_text(encoding="utf-8")):
            if match.group(1) not in NOT_POINTERS:
                found.append((str(source.relative_to(ROOT)), match.group(1)))
    return found


def test_every_named_document_exists() -> None:
    """``docs/x.md`` resolves from the repository root, ``X.md`` from the root or docs/."""
    broken = [
        (source, name)
        for source, name in _pointers()
        if not (ROOT / name).is_file() and not (ROOT / "docs" / name).is_file()
    ]
    assert _pointers(), "the scan finds no pointer at all"
    assert broken == []


def test_no_document_names_a_path_of_one_machine() -> None:
    """No ``/work/...``, ``/home/...``, ``/root/...`` or ``/Users/...`` in docs or docstrings."""
    found = [
        (str(source.relative_to(ROOT)), match.group(0))
        for source in SOURCES
        for match in MACHINE_PATH.finditer(source.read_text(encoding="utf-8"))
    ]
    assert found == []
