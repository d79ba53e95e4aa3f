"""Where the example skills are: shipped in the wheel, or the checkout's ``examples/skills``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLE_SKILLS"]

_PACKAGE = Path(__file__).resolve().parent.parent


def _example_skills() -> Path:
    # A wheel carries them as package data (pyproject: force-include); a source
    # checkout or an editable install has them at the repository root.
    shipped = _PACKAGE / "_examples" / "skills"
    return shipped if shipped.is_dir() else _PACKAGE.parent / "examples" / "skills"


EXAMPLE_SKILLS: Path = _example_skills()
"""The example skills (``log-analyzer``, ``csv-summary``, ``release-notes``), from any directory.

``load_skills(EXAMPLE_SKILLS)`` works wherever the program runs: the folder is
found next to the installed package, not through the working directory.
"""
