"""The skills block says how each backend's skills are read, with its own tools (#10 item 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conjure_async import Session
from conjure_async.backends import AnthropicBackend, LocalBackend
from conjure_async.backends._hosted import AnthropicSkill
from conjure_async.skills import SkillListing, available_skills_block
from conjure_async.skills._prompt import DEFAULT_INSTRUCTIONS
from conjure_async.testing import FakeAnthropicServer, ScriptedModel, text_response
from tests.anthropic.constants import API_KEY, FAST
from tests.anthropic.skill_factory import make_skill

pytestmark = pytest.mark.anyio


def _hosted(server: FakeAnthropicServer, *skills: object) -> AnthropicBackend:
    return AnthropicBackend(
        list(skills) or [AnthropicSkill("xlsx")],  # type: ignore[arg-type]
        api_key=API_KEY,
        base_url=server.base_url,
        retry=FAST,
    )


async def test_hosted_prompt_names_the_tools_hosted_requests_offer(
    server: FakeAnthropicServer,
) -> None:
    """Hosted requests offer no ``view`` tool: the prompt sends the model to bash instead."""
    async with Session(_hosted(server), model=ScriptedModel([text_response("ok")])) as session:
        prompt = session.system_prompt
        tools = session.tools
    assert prompt is not None
    assert not any(t.get("name") == "view" for t in tools)
    assert "view tool" not in prompt
    assert "code execution container" in prompt
    assert "/skills/" in prompt
    assert "bash" in prompt
    assert "<name>xlsx</name>" in prompt


async def test_local_prompt_keeps_the_view_tool(tmp_path: Path) -> None:
    """Local skills are still read with the ``view`` tool at their location."""
    skill = make_skill(tmp_path / "skills", "notes")
    async with Session(
        LocalBackend([skill]), model=ScriptedModel([text_response("ok")])
    ) as session:
        prompt = session.system_prompt
    assert prompt is not None
    assert prompt.startswith(DEFAULT_INSTRUCTIONS)
    assert "with the view tool" in DEFAULT_INSTRUCTIONS


async def test_mixed_session_says_how_each_backends_skills_are_read(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """Local and hosted skills in one session: each group gets its own way of reading."""
    skill = make_skill(tmp_path / "skills", "notes")
    async with Session(
        [LocalBackend([skill]), _hosted(server)], model=ScriptedModel([text_response("ok")])
    ) as session:
        prompt = session.system_prompt
    assert prompt is not None
    instructions = prompt.split("<available_skills>")[0]
    local_line = next(line for line in instructions.splitlines() if "notes" in line)
    hosted_line = next(line for line in instructions.splitlines() if "xlsx" in line)
    assert "view tool" in local_line
    assert "code execution container" not in local_line
    assert "code execution container" in hosted_line
    assert "view tool" not in hosted_line


def test_listings_choose_how_their_skill_md_is_read() -> None:
    """One way of reading for all: one sentence; the default stays the ``view`` tool."""
    default = available_skills_block([SkillListing("a", "A.", "/a/SKILL.md")])
    custom = available_skills_block(
        [SkillListing("a", "A.", None, read_with="with `cat` in the sandbox")]
    )
    assert default.startswith(DEFAULT_INSTRUCTIONS)
    assert "read that skill's SKILL.md with `cat` in the sandbox, then follow" in custom
    assert "view tool" not in custom
