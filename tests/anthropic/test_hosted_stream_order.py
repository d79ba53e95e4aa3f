"""Hosted server-tool events stream in their place between the text deltas."""

from __future__ import annotations

import pytest

from conjure_async import Session
from conjure_async.backends import AnthropicBackend, AnthropicSkill
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, collect
from tests.helpers import compact_events

pytestmark = pytest.mark.anyio

RESPONSE = {
    "content": [
        {"type": "text", "text": "Listing the skill."},
        {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "bash_code_execution",
            "input": {"command": "ls /skills/xlsx"},
        },
        {
            "type": "bash_code_execution_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": {
                "type": "bash_code_execution_result",
                "stdout": "SKILL.md\n",
                "stderr": "",
                "return_code": 0,
                "content": [],
            },
        },
        {"type": "text", "text": "It holds SKILL.md."},
    ],
    "stop_reason": "end_turn",
}


async def test_streamed_hosted_run_interleaves_tool_events_with_text() -> None:
    async with FakeAnthropicServer([RESPONSE]) as server:
        async with AnthropicModel(api_key="k", base_url=server.base_url, stream=True) as model:
            backend = AnthropicBackend([AnthropicSkill("xlsx")], api=model.api)
            async with Session(backend, model=model) as session:
                events = await collect(session.stream("What is in the skill?"))
        assert server.message_bodies[0]["stream"] is True
    assert compact_events(events) == [
        "text:Listing the skill.",
        "tool_started",
        "tool_finished",
        "text:It holds SKILL.md.",
        "model_responded",
        "turn_finished",
    ]
    finished = next(e for e in events if e.kind == "tool_finished")
    assert (finished.stdout, finished.exit_code, finished.backend) == ("SKILL.md\n", 0, "anthropic")
