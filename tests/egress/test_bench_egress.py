"""Smoke test of the egress benchmark: every row measured, in its quick form."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_egress

pytestmark = pytest.mark.anyio


async def test_quick_run_measures_every_row() -> None:
    """Five latency rows with figures and two memory rows come back as markdown."""
    lines = await bench_egress.run(quick=True)
    latency = [line for line in lines if re.match(r"^\| .+ \| [\d.]+ ms \| [\d.]+ ms \| \+", line)]
    memory = [line for line in lines if re.match(r"^\| .+ \| -?\d+ KB \|$", line)]
    assert len(latency) == 6, lines  # the bubblewrap row too (bwrap is installed for the suite)
    assert len(memory) == 2, lines
