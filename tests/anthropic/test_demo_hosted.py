"""The hosted demo the CLI shows: it runs offline and says plainly that the server is fake."""

from __future__ import annotations

import pytest

from conjure_async._demo_hosted import run_hosted_demo

pytestmark = pytest.mark.anyio


async def test_hosted_demo_runs_against_the_fake_server_and_says_so() -> None:
    lines: list[str] = []

    await run_hosted_demo(lines.append)

    text = "\n".join(lines)
    assert "FAKE Anthropic server" in lines[0]
    assert "[pause_turn #1" in text
    assert "file created in the container: budget.xlsx (file_fake000001)" in text
    assert "budget.xlsx" in text
    assert "turn finished (end_turn, 3 model calls" in text
