"""McpSkillsBackend: skills taken from MCP servers, verified, written per origin, sandboxed."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from conjure_async import McpError, Session, SkillConflictError
from conjure_async.backends import LocalBackend
from conjure_async.mcp import McpBackend, McpSkillsBackend
from conjure_async.mcp._served import server_directory, uri_segments
from conjure_async.messages import MessagesRequest
from conjure_async.skills import load_skill, load_skills
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.mcp.skills_client import serve_command, serve_http

pytestmark = pytest.mark.anyio

SKILLS = Path(__file__).resolve().parents[2] / "examples" / "skills"
HOSTILE = Path(__file__).with_name("hostile_skills_server.py")
CSV = "city,temp\\noslo,3\\nrome,14\\n"


def location(request: MessagesRequest, name: str) -> str:
    """Where the system prompt says the skill ``name`` lives (as the model reads it)."""
    pattern = (
        rf"<name>{re.escape(name)}</name>\s*<description>.*?</description>\s*"
        r"<location>(.*?)</location>"
    )
    found = re.search(pattern, request.system or "", re.DOTALL)
    assert found, f"{name} is not in the system prompt"
    return found.group(1).removesuffix("/SKILL.md")


def run_script(name: str, script: str) -> Any:
    """A model step running ``script`` of the skill ``name`` on a small CSV."""

    def step(request: MessagesRequest) -> Any:
        command = f"printf '{CSV}' > d.csv && python3 {location(request, name)}/{script} d.csv"
        return tool_use_response(tool_call("bash_tool", {"command": command, "description": "run"}))

    return step


def served_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("conjure-mcp-skills-*"))


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def skill_md(name: str, description: str = "A skill for the hostile tests.") -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\nRun scripts/run.py.\n"


def entry(path: str, files: dict[str, str], **changes: Any) -> dict[str, Any]:
    """A skills/list entry for ``skill://<path>`` with true digests and sizes (unless changed)."""
    name = path.rsplit("/", 1)[-1]
    found: dict[str, Any] = {
        "uri": f"skill://{path}/SKILL.md",
        "frontmatter": {"name": name, "description": "A skill for the hostile tests."},
        "resources": [
            {"uri": f"skill://{path}/{rel}", "digest": digest(text), "size": len(text.encode())}
            for rel, text in files.items()
        ],
    }
    found.update(changes)
    return found


def hostile(
    tmp_path: Path, skills: list[dict[str, Any]], files: dict[str, str], **extra: Any
) -> McpBackend:
    """The hostile server (another process) answering ``skills`` and serving ``files``."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"skills": skills, "files": files, **extra}))
    return McpBackend([sys.executable, str(HOSTILE), str(spec)])


def good_files(path: str = "evil") -> dict[str, str]:
    name = path.rsplit("/", 1)[-1]
    return {"SKILL.md": skill_md(name), "scripts/run.py": "print('safe')\n"}


def served(path: str, files: dict[str, str]) -> dict[str, str]:
    return {f"skill://{path}/{rel}": text for rel, text in files.items()}


async def test_served_skill_runs_under_bwrap_beside_a_local_one_over_stdio() -> None:
    """Skills of `conjure mcp serve` (another process, stdio) run under bwrap; no shadowing."""
    server = McpBackend(serve_command(str(SKILLS)))
    local = load_skills(SKILLS)
    backend = McpSkillsBackend({"team": server}, backend="bwrap", skills=local)
    before = served_dirs()
    model = ScriptedModel(
        [run_script("team.csv-summary", "scripts/summarize.py"), text_response("ok")]
    )
    async with Session(backend, model=model) as session:
        directory = backend.directory
        assert directory is not None
        assert directory.is_dir()
        assert not server.connected  # fetched at open, then disconnected
        names = {listing.name for listing in backend.skill_listings()}
        assert {"csv-summary", "team.csv-summary", "team.log-analyzer"} <= names
        reply = await session.chat("summarize")
        request = model.requests[0]
        assert location(request, "team.csv-summary") != location(request, "csv-summary")
        assert "[from MCP server 'team']" in (request.system or "").replace("&apos;", "'")
    (record,) = reply.tool_calls
    assert not record.is_error, record.output
    assert "temp: count=2" in record.output
    assert record.backend == "mcp-skills"
    assert not directory.exists()
    assert served_dirs() == before


async def test_two_origins_over_http_and_stdio_land_apart_and_run_on_bwrap() -> None:
    """Same URIs from two servers (HTTP and stdio) are two skills at two identity paths."""
    async with serve_http(str(SKILLS)) as url:
        web = McpBackend(url=url)
        team = McpBackend(serve_command(str(SKILLS)))
        backend = McpSkillsBackend({"web": web, "team": team}, backend="bwrap")
        model = ScriptedModel(
            [run_script("web.csv-summary", "scripts/summarize.py"), text_response("ok")]
        )
        async with Session(backend, model=model) as session:
            root = backend.directory
            assert root is not None
            by_name = {s.name: s for s in backend.served}
            web_dir = server_directory(root, "web", web.target)
            team_dir = server_directory(root, "team", team.target)
            assert web_dir != team_dir
            assert by_name["web.csv-summary"].path == web_dir / "csv-summary"
            assert by_name["team.csv-summary"].path == team_dir / "csv-summary"
            for name in ("csv-summary", "log-analyzer", "release-notes"):
                original = load_skill(SKILLS / name)
                assert by_name[f"web.{name}"].content_hash == original.content_hash
            reply = await session.chat("summarize")
        assert "temp: count=2" in reply.tool_calls[0].output
        assert not root.exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("digest", r"scripts/run\.py: digest mismatch"),
        ("size", r"scripts/run\.py: 13 bytes served, the manifest says 14"),
        ("frontmatter", "frontmatter of its SKILL.md differs"),
        ("dynamic", "'dynamic'"),
        ("outside", "outside the skill's directory"),
        ("traversal", "'\\.\\.' segment"),
        ("absolute", "absolute path"),
        ("scheme", "'file' is not skill://"),
        ("unlisted-skill-md", "does not list SKILL.md"),
        ("not-declared", "does not serve skills"),
    ],
)
async def test_hostile_server_is_refused_and_leaves_nothing(
    tmp_path: Path, case: str, message: str
) -> None:
    """A skill that fails verification fails the open with a clear error; nothing is left."""
    files = good_files()
    skills = [entry("evil", files)]
    serving = served("evil", files)
    extra: dict[str, Any] = {}
    if case == "digest":  # same size, other bytes
        serving["skill://evil/scripts/run.py"] = "print('EVIL')\n"
    elif case == "size":
        serving["skill://evil/scripts/run.py"] = "print('safe')"
    elif case == "frontmatter":
        skills[0]["frontmatter"]["description"] = "Something the SKILL.md does not say."
    elif case == "dynamic":
        skills[0]["resources"] = "dynamic"
    elif case == "outside":
        skills[0]["resources"][1]["uri"] = "skill://other/scripts/run.py"
        serving["skill://other/scripts/run.py"] = files["scripts/run.py"]
    elif case == "traversal":
        skills[0]["resources"][1]["uri"] = "skill://evil/../../../tmp/run.py"
    elif case == "absolute":
        skills[0]["resources"][1]["uri"] = "skill:///etc/cron.d/run.py"
    elif case == "scheme":
        skills[0]["resources"][1]["uri"] = "file:///etc/passwd"
    elif case == "unlisted-skill-md":
        skills[0]["resources"] = skills[0]["resources"][1:]
    elif case == "not-declared":
        extra["declare"] = False
    server = hostile(tmp_path, skills, serving, **extra)
    backend = McpSkillsBackend({"evil": server}, backend="bwrap")
    before = served_dirs()
    with pytest.raises(McpError, match=message) as info:
        async with Session(backend, model=ScriptedModel([])):
            pass
    assert "'evil'" in str(info.value)
    assert info.value.target == server.target
    if case not in ("not-declared",):
        assert "skill://evil/SKILL.md" in str(info.value)
    assert backend.directory is None
    assert served_dirs() == before
    assert not server.connected


@pytest.mark.parametrize(
    "uri",
    [
        "skill://evil/../SKILL.md",
        "skill://../etc/SKILL.md",
        "skill://evil/%2e%2e/%2e%2e/SKILL.md",
        "skill://evil/a%2fb/SKILL.md",
        "skill://evil/a\\..\\b/SKILL.md",
        "skill://evil/./SKILL.md",
        "skill://evil//SKILL.md",
        "skill:///etc/passwd",
        "skill:/etc/passwd",
        "/etc/passwd",
        "../../etc/passwd",
        "file:///etc/passwd",
        "http://example.com/evil/SKILL.md",
        "javascript:alert(1)",
        "skill://user@evil/SKILL.md",
        "skill://evil:22/SKILL.md",
        "skill://evil/SKILL.md?x=1",
        "skill://evil/SKILL.md#top",
        "skill://evil/a\x00b/SKILL.md",
        "skill://evil/a\nb/SKILL.md",
        "skill://evil/" + "a" * 300 + "/SKILL.md",
    ],
)
def test_hostile_uris_are_refused(uri: str) -> None:
    """Path escapes, absolute paths, other schemes and odd characters are refused."""
    with pytest.raises(ValueError):
        uri_segments(uri)


def test_plain_uris_keep_their_segments() -> None:
    """A nested skill path and a file name with a space (percent-encoded) are read as written."""
    assert uri_segments("skill://acme/billing/refunds/SKILL.md") == (
        "acme",
        "billing",
        "refunds",
        "SKILL.md",
    )
    assert uri_segments("skill://pdf/references/my%20notes.md")[-1] == "my notes.md"


async def test_same_names_in_one_listing_are_told_apart_by_path(tmp_path: Path) -> None:
    """Two skills named alike on one server get names from their paths, nested dirs kept."""
    billing = {"SKILL.md": skill_md("refunds"), "scripts/run.py": "print('billing')\n"}
    support = {"SKILL.md": skill_md("refunds"), "scripts/run.py": "print('support')\n"}
    skills = [entry("acme/billing/refunds", billing), entry("acme/support/refunds", support)]
    serving = {**served("acme/billing/refunds", billing), **served("acme/support/refunds", support)}
    server = hostile(tmp_path, skills, serving)
    backend = McpSkillsBackend({"evil": server}, backend="bwrap")
    async with Session(backend, model=ScriptedModel([])):
        root = backend.directory
        assert root is not None
        by_name = {s.name: s for s in backend.served}
        assert set(by_name) == {"evil.acme.billing.refunds", "evil.acme.support.refunds"}
        where = server_directory(root, "evil", server.target) / "acme" / "billing" / "refunds"
        assert by_name["evil.acme.billing.refunds"].path == where
        assert (where / "scripts" / "run.py").read_text() == "print('billing')\n"
        assert by_name["evil.acme.support.refunds"].allowed_tools == []


async def test_unsandboxed_local_needs_the_opt_in(tmp_path: Path) -> None:
    """backend='local' (or a callable building an unsandboxed backend) is refused without it."""
    files = good_files()
    with pytest.raises(ValueError, match="allow_unsandboxed=True"):
        McpSkillsBackend({"evil": McpBackend(["unused"])}, backend="local")
    server = hostile(tmp_path, [entry("evil", files)], served("evil", files))
    refused = McpSkillsBackend({"evil": server}, backend=LocalBackend)
    with pytest.raises(ValueError, match="allow_unsandboxed=True"):
        async with Session(refused, model=ScriptedModel([])):
            pass
    assert refused.directory is None
    allowed = McpSkillsBackend({"evil": server}, backend="local", allow_unsandboxed=True)
    model = ScriptedModel([run_script("evil.evil", "scripts/run.py"), text_response("ok")])
    async with Session(allowed, model=model) as session:
        reply = await session.chat("go")
    assert reply.tool_calls[0].output.strip() == "safe"


async def test_a_local_skill_with_a_served_name_is_a_clear_conflict(tmp_path: Path) -> None:
    """A local skill already named <label>.<name> makes the open fail naming the clash."""
    files = good_files()
    folder = tmp_path / "local" / "evil.evil"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(skill_md("evil.evil"))
    clashing = load_skill(folder, lenient=True)
    server = hostile(tmp_path, [entry("evil", files)], served("evil", files))
    backend = McpSkillsBackend({"evil": server}, backend="bwrap", skills=[clashing])
    with pytest.raises(SkillConflictError, match=r"'evil\.evil'"):
        async with Session(backend, model=ScriptedModel([])):
            pass
    assert backend.directory is None


def test_labels_are_checked() -> None:
    """A label that cannot prefix skill names is refused when the backend is built."""
    for label in ("Team", "a.b", "", "x" * 41, "../x"):
        with pytest.raises(ValueError, match="server label"):
            McpSkillsBackend({label: McpBackend(["unused"])})


async def test_open_cancelled_while_fetching_leaves_nothing() -> None:
    """Cancelling a session's open while the server starts leaves no directory or process."""
    import anyio

    server = McpBackend(serve_command(str(SKILLS)))
    backend = McpSkillsBackend({"team": server}, backend="bwrap")
    before = served_dirs()
    with anyio.move_on_after(0.3) as scope:
        async with Session(backend, model=ScriptedModel([])):
            pass
    assert scope.cancelled_caught
    assert backend.directory is None
    assert not server.connected
    assert served_dirs() == before
