"""Every Python example in the README and docs runs (documentation cannot rot).

Each runs as a user would paste it: a script in a fresh directory outside the
repository, with that directory as the working directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for index, match in enumerate(FENCE.finditer(text)):
            code = match.group(1)
            if "# doc: skip" in code:
                continue
            found.append((f"{path.relative_to(ROOT)}#{index}", code))
    return found


EXAMPLES = _examples()


def test_the_readme_has_a_runnable_quick_start() -> None:
    assert any(name.startswith("README.md") for name, _ in EXAMPLES)


def _run(code: str, where: Path) -> subprocess.CompletedProcess[str]:
    script = where / "example.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    """The example exits 0 when run from a directory outside the repository."""
    result = _run(code, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"


def test_the_quick_start_works_from_another_directory_and_prints_the_reply(
    tmp_path: Path,
) -> None:
    """The README's quick start, run outside the repo, finds its skills and shows the reply."""
    quick_start = next(code for name, code in EXAMPLES if name.startswith("README.md"))
    result = _run(quick_start, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The command printed hi." in result.stdout.splitlines()
