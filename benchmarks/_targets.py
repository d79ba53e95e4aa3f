"""The issue #11 targets the benchmarks check, collected for ``docs/performance.md``.

A benchmark calls :func:`record` for each target it measures; ``python -m
benchmarks`` lists them, in the order measured, at the top of the page.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERDICTS", "Verdict", "mark", "record"]


@dataclass(frozen=True)
class Verdict:
    """One target and what this run measured for it."""

    target: str
    measured: str
    holds: bool | None
    """``None``: not decidable in this run (say why in ``note``)."""
    note: str = ""


VERDICTS: list[Verdict] = []


def record(target: str, measured: str, holds: bool | None, note: str = "") -> None:
    """Note a target's outcome in this run."""
    VERDICTS.append(Verdict(target, measured, holds, note))


def mark(holds: bool | None) -> str:
    """``yes``, ``**no**`` or ``n/a``."""
    if holds is None:
        return "n/a"
    return "yes" if holds else "**no**"
