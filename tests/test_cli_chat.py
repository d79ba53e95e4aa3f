"""``conjure chat`` against the fake Anthropic server (the real-API path, offline)."""

from __future__ import annotations

import pytest

from conjure_async._commands import run_chat
from conjure_async.testing import FakeAnthropicServer, text_response

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["local", "anthropic"])
async def test_chat_streams_a_reply_through_the_chosen_backend(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeAnthropicServer([text_response("Hello from the fake API.")]) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        written: list[str] = []
        code = await run_chat(
            "hi",
            backend=backend,
            skill_paths=[],
            hosted_skills=["xlsx@latest"] if backend == "anthropic" else [],
            model_name="claude-sonnet-5-5",
            write=written.append,
        )
        body = server.message_bodies[0]
    assert code == 0
    output = "".join(written)
    assert "Hello from the fake API." in output
    assert "turn finished: end_turn" in output
    assert body["model"] == "claude-sonnet-5-5"
    assert body["messages"][0]["content"] == [  # marked for prompt caching, by default
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
    ]
    if backend == "anthropic":
        assert body["container"]["skills"] == [
            {"type": "anthropic", "skill_id": "xlsx", "version": "latest"}
        ]
        assert any(t.get("type", "").startswith("code_execution") for t in body["tools"])
    else:
        assert [t["name"] for t in body["tools"]] == [
            "view",
            "bash_tool",
            "create_file",
            "str_replace",
        ]
    assert "sk-ant-test-key" not in output
