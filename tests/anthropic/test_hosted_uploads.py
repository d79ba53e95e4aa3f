"""Uploading local skills: hosted rules first (#10 item 20), one upload per content (item 21)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from conjure_async import Session
from conjure_async._exceptions import SkillValidationError
from conjure_async.backends import AnthropicBackend
from conjure_async.skills import Skill, load_skill
from conjure_async.testing import Delay, FakeAnthropicServer, ScriptedModel
from tests.anthropic.constants import API_KEY, FAST
from tests.anthropic.skill_factory import make_skill

pytestmark = pytest.mark.anyio


def _backend(
    server: FakeAnthropicServer, skills: list[Skill], **options: object
) -> AnthropicBackend:
    return AnthropicBackend(
        skills,
        api_key=API_KEY,
        base_url=server.base_url,
        retry=FAST,
        **options,  # type: ignore[arg-type]
    )


def _uploads(server: FakeAnthropicServer) -> int:
    """Skill creates plus version creates: every upload of skill files."""
    return len(
        [
            r
            for r in server.requests_to("/v1/skills", "POST")
            if r.path.endswith(("skills", "versions"))
        ]
    )


# -- item 20: the anthropic profile before any upload --------------------------------------


def _claude_api_like(root: Path) -> Skill:
    """Like Anthropic's own claude-api skill: fine for lenient loading, refused by the API."""
    folder = root / "claude-api"
    folder.mkdir(parents=True)
    description = "Build apps with the Claude API. " + "x" * (1068 - 32)
    assert len(description) == 1068
    (folder / "SKILL.md").write_text(
        f"---\nname: claude-api\ndescription: {description}\n---\n\nUse the API.\n",
        encoding="utf-8",
    )
    return load_skill(folder, lenient=True)


async def test_skill_failing_the_anthropic_profile_is_refused_before_any_request(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """A reserved word in the name and a 1,068-character description: named, nothing sent."""
    good = make_skill(tmp_path, "budget-builder")
    bad = _claude_api_like(tmp_path)

    with pytest.raises(SkillValidationError) as caught:
        async with Session(_backend(server, [good, bad]), model=ScriptedModel([])):
            pass

    assert server.requests == []
    problems = {(p.field, p.message.split(" (")[0]) for p in caught.value.problems}
    assert problems == {
        ("name", "must not contain the reserved word 'claude'"),
        ("description", "must be at most 1024 characters"),
    }
    assert "'claude-api'" in str(caught.value)
    assert "budget-builder" not in str(caught.value)


async def test_xml_in_a_description_is_refused_before_any_request(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """The hosted rule against XML tags applies to leniently loaded skills too."""
    folder = tmp_path / "tagged"
    folder.mkdir()
    (folder / "SKILL.md").write_text(
        "---\nname: tagged\ndescription: Use <b>bold</b> claims.\n---\n\nBody.\n",
        encoding="utf-8",
    )
    skill = load_skill(folder, lenient=True)

    with pytest.raises(SkillValidationError, match=r"description: must not contain XML tags"):
        async with Session(_backend(server, [skill]), model=ScriptedModel([])):
            pass

    assert server.requests == []


# -- item 21: one upload per content, across tasks and processes --------------------------


async def test_concurrent_sessions_upload_the_same_skill_once(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """Two sessions opening at once with the same skill: one upload, both use it."""
    skill = make_skill(tmp_path)
    server.inject(Delay(0.5), path="/v1/skills", method="POST")  # a slow first upload
    used: list[list[dict[str, str]]] = []

    async def open_one() -> None:
        backend = _backend(server, [skill])
        async with Session(backend, model=ScriptedModel([])):
            used.append(backend.skill_entries())

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_one)
        tg.start_soon(open_one)

    assert _uploads(server) == 1
    assert server.skills_created == 1
    assert used[0] == used[1]


_CHILD = textwrap.dedent(
    """
    import sys
    import anyio
    from conjure_async import Session
    from conjure_async.backends import AnthropicBackend
    from conjure_async.skills import load_skill
    from conjure_async.testing import ScriptedModel

    base_url, key, index, folder = sys.argv[1:5]

    async def main() -> None:
        backend = AnthropicBackend(
            [load_skill(folder)], api_key=key, base_url=base_url, index_path=index
        )
        print("ready", flush=True)
        sys.stdin.readline()  # wait for "go", so both processes race
        async with Session(backend, model=ScriptedModel([])):
            print(backend.skill_entries()[0]["skill_id"], flush=True)

    anyio.run(main)
    """
)


async def test_two_processes_sharing_the_index_upload_once(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """Two processes, one index, the same skill, started together: one upload."""
    skill = make_skill(tmp_path / "skills")
    index = tmp_path / "cache" / "anthropic-skills.json"
    server.inject(Delay(1.0), path="/v1/skills", method="POST")  # a slow first upload
    argv = [sys.executable, "-c", _CHILD, server.base_url, API_KEY, str(index), str(skill.path)]
    outputs: list[str] = []

    async with (
        await anyio.open_process(argv, stderr=subprocess.STDOUT) as first,
        await anyio.open_process(argv, stderr=subprocess.STDOUT) as second,
    ):
        children = (first, second)
        for child in children:
            assert child.stdout is not None
            line = await _read_line(child.stdout)
            assert line == "ready", line
        for child in children:
            assert child.stdin is not None
            await child.stdin.send(b"go\n")

        async def finish(child: anyio.abc.Process) -> None:
            assert child.stdout is not None
            outputs.append(await _read_line(child.stdout))
            await child.wait()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for child in children:
                    tg.start_soon(finish, child)

    assert [c.returncode for c in children] == [0, 0], outputs
    assert _uploads(server) == 1
    assert outputs[0] == outputs[1] == server.custom_skill_ids[0]
    entries = json.loads(index.read_text())["apis"][server.base_url]
    assert list(entries) == [skill.content_hash]


async def _read_line(stream: anyio.abc.ByteReceiveStream) -> str:
    data = b""
    with anyio.fail_after(60):
        while not data.endswith(b"\n"):
            data += await stream.receive(1)
    return data.decode().strip()


async def test_waiting_for_another_processs_upload_can_be_cancelled(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """While another holder has the content's lock, opening waits; cancelling ends the wait."""
    import fcntl
    import os

    from conjure_async.backends import _hosted_index

    skill = make_skill(tmp_path / "skills")
    index = tmp_path / "cache" / "anthropic-skills.json"
    lock_file = _hosted_index.UploadIndex(index, server.base_url).lock_dir / (
        f"{skill.content_hash}.lock"
    )
    lock_file.parent.mkdir(parents=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)  # "another process" holds the lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with anyio.move_on_after(0.5) as scope:
            async with Session(
                _backend(server, [skill], index_path=index), model=ScriptedModel([])
            ):
                pytest.fail("the session opened while the upload lock was held")
    finally:
        os.close(fd)

    assert scope.cancelled_caught
    assert _uploads(server) == 0
    assert _hosted_index._task_locks == {}


async def test_a_failed_upload_releases_the_backends_client(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    """The session closes only backends that opened: a failing open closes its own client."""
    from conjure_async._exceptions import BadRequestError
    from conjure_async.testing import ErrorResponse

    server.inject(ErrorResponse(400, message="no"), path="/v1/skills", method="POST")
    backend = _backend(server, [make_skill(tmp_path)])

    with pytest.raises(BadRequestError):
        async with Session(backend, model=ScriptedModel([])):
            pass

    assert backend._owned_api is not None
    assert backend._owned_api.closed  # (the autouse fixture checks every client too)
