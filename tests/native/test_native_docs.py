"""Every Python block of the native and pipeline docs runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(name: str) -> list[tuple[str, str]]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return [(f"{name}:{n}", code) for n, code in enumerate(BLOCK.findall(text), 1)]


CASES = blocks("pipelines.md") + blocks("native.md")


@pytest.mark.parametrize(("where", "code"), CASES, ids=[where for where, _ in CASES])
def test_doc_block_runs(where: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, where, "exec"), {"__name__": "__main__"})
