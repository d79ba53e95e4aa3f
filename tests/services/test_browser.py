"""The FastAPI example's chat page, in headless Chromium (Debian's ``chromium``).

Chromium is driven over the DevTools protocol from Python (see ``cdp.py``).
Where it is missing and cannot be installed the test skips, except under
``CI=true``, where it fails: CI installs chromium.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.services.demo import demo_model
from tests.services.cdp import chromium_page
from tests.services.support import serve
from tests.support.system import require_package

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_package("chromium", "chromium")


def _processes_using(profile: Path) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(profile).encode() in cmdline:
            yield int(entry.name)


PAGE_STATE = """(() => ({
  note: document.querySelector('[data-testid=model-note]').textContent,
  user: [...document.querySelectorAll('[data-testid=user]')].map(n => n.textContent),
  assistant: [...document.querySelectorAll('[data-testid=assistant]')].map(n => n.textContent),
  cards: [...document.querySelectorAll('details[data-testid=tool-card]')].map(card => ({
    summary: card.querySelector('summary').textContent,
    output: card.querySelector('[data-testid=tool-output]').textContent,
    state: card.classList.contains('ok') ? 'ok' : card.className,
  })),
  links: [...document.querySelectorAll('[data-testid=files] a')].map(a => a.getAttribute('href')),
}))()"""


async def test_a_message_round_trips_and_its_tool_calls_show_as_cards(
    chromium: str, tmp_path: Path
) -> None:
    profile = tmp_path / "chromium-profile"
    async with serve("fastapi", demo_model) as service, chromium_page(chromium, profile) as page:
        await page.send("Page.navigate", url=f"{service.url}/")
        await page.wait_for("document.readyState === 'complete' && !!document.forms.form")
        await page.evaluate(
            "document.getElementById('text').value = 'hello browser';"
            "document.forms.form.requestSubmit()"
        )
        await page.wait_for("document.body.dataset.turns === '1'")
        state = await page.evaluate(PAGE_STATE)
        errors = page.page_errors()

    assert state["note"] == (
        "Scripted model (scripted-demo): the replies come from a script, not from Claude. "
        "The tools it calls run for real on this server."
    )
    assert state["user"] == ["hello browser"]
    assert state["assistant"][0] == "Let me run a command and write that down."
    assert state["assistant"][-1].startswith(
        "Done. The command printed:\n\nYou said: hello browser"
    )
    cards = {card["summary"].split(" ", 1)[0]: card for card in state["cards"]}
    assert sorted(cards) == ["bash_tool", "create_file"]
    assert cards["bash_tool"]["output"].startswith("You said: hello browser\n")
    assert {card["state"] for card in state["cards"]} == {"ok"}
    assert [link.rsplit("/", 1)[1] for link in state["links"]] == ["notes.md"]
    assert errors == [], json.dumps(errors)
    assert list(_processes_using(profile)) == []  # chromium is gone, every process of it
