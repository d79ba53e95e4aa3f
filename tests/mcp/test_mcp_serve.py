"""`conjure mcp serve`: the Skills extension and the skill tools, to the official client."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from conjure_async.mcp._server import SKILLS_EXTENSION
from tests.mcp.skills_client import (
    AnyResult,
    GetParams,
    SkillsGet,
    SkillsList,
    serve_command,
    serve_http,
    text,
)

pytestmark = pytest.mark.anyio

SKILLS = Path(__file__).resolve().parents[2] / "examples" / "skills"


def stdio_params() -> StdioServerParameters:
    command = serve_command(str(SKILLS))
    return StdioServerParameters(command=command[0], args=command[1:])


def expected_manifest(name: str) -> list[dict[str, object]]:
    root = SKILLS / name
    return [
        {
            "uri": f"skill://{name}/{p.relative_to(root).as_posix()}",
            "digest": "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest(),
            "size": p.stat().st_size,
        }
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


async def test_stdio_declares_the_extension_and_lists_skills_with_true_digests() -> None:
    """Over stdio: the capability is declared; skills/list and skills/get match the files."""
    async with Client(stdio_params()) as client:
        assert client.server_capabilities.extensions == {SKILLS_EXTENSION: {"directoryRead": False}}
        listed = await client.session.send_request(SkillsList(), AnyResult)
        skills = {s["frontmatter"]["name"]: s for s in listed.model_dump()["skills"]}
        assert set(skills) == {"csv-summary", "log-analyzer", "release-notes"}
        for name, skill in skills.items():
            assert skill["uri"] == f"skill://{name}/SKILL.md"
            assert skill["resources"] == expected_manifest(name)
        got = await client.session.send_request(
            SkillsGet(params=GetParams(uri="skill://log-analyzer/SKILL.md")), AnyResult
        )
        assert got.model_dump()["skill"] == skills["log-analyzer"]
        for entry in skills["log-analyzer"]["resources"]:
            (contents,) = (await client.read_resource(entry["uri"])).contents
            data = (
                contents.text.encode()
                if hasattr(contents, "text")
                else base64.b64decode(contents.blob)
            )
            assert "sha256:" + hashlib.sha256(data).hexdigest() == entry["digest"]


async def test_stdio_runs_each_skill_tool_in_one_sandbox() -> None:
    """Over stdio: the four tools are listed and each runs, all in one work dir."""
    async with stdio_client(stdio_params()) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        tools = {t.name for t in (await s.list_tools()).tools}
        assert tools == {"view", "create_file", "str_replace", "bash_tool"}
        pwd = text(await s.call_tool("bash_tool", {"command": "pwd", "description": "where"}))
        path = f"{pwd.strip()}/notes.txt"
        made = await s.call_tool(
            "create_file", {"path": path, "file_text": "hello world\n", "description": "make"}
        )
        assert not made.is_error, text(made)
        edited = await s.call_tool(
            "str_replace",
            {"path": path, "old_str": "world", "new_str": "mcp", "description": "edit"},
        )
        assert not edited.is_error, text(edited)
        viewed = await s.call_tool("view", {"path": path})
        assert "hello mcp" in text(viewed)
        failed = await s.call_tool("bash_tool", {"command": "exit 3", "description": "fail"})
        assert failed.is_error
        bad = await s.call_tool("view", {"nope": 1})
        assert bad.is_error
        assert "Invalid arguments" in text(bad)


async def test_http_session_keeps_its_sandbox_and_serves_skills() -> None:
    """Over streamable HTTP: a session's calls share a sandbox; skills/list works."""
    async with serve_http(str(SKILLS)) as url:
        async with streamable_http_client(url) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            assert len((await s.list_tools()).tools) == 4
            await s.call_tool("bash_tool", {"command": "echo kept > f", "description": "w"})
            kept = await s.call_tool("bash_tool", {"command": "cat f", "description": "r"})
            assert text(kept).strip() == "kept"
        async with Client(url) as client:
            assert SKILLS_EXTENSION in (client.server_capabilities.extensions or {})
            listed = (await client.session.send_request(SkillsList(), AnyResult)).model_dump()
            names = sorted(s["frontmatter"]["name"] for s in listed["skills"])
            assert names == ["csv-summary", "log-analyzer", "release-notes"]
            result = await client.call_tool("bash_tool", {"command": "echo hi", "description": "x"})
            assert text(result).strip() == "hi"


async def test_unknown_skill_is_a_json_rpc_error() -> None:
    """skills/get for a skill the server does not have answers with an error."""
    from mcp.shared.exceptions import MCPError

    async with Client(stdio_params()) as client:
        with pytest.raises(MCPError, match="no skill"):
            await client.session.send_request(
                SkillsGet(params=GetParams(uri="skill://nope/SKILL.md")), AnyResult
            )
