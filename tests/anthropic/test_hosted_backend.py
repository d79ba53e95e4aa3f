"""The hosted backend end to end: fake server, real sockets, AnthropicModel, Session."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conjure_async import Session
from conjure_async._exceptions import SkillError
from conjure_async.anthropic import AnthropicAPI, SkillsClient
from conjure_async.backends import AnthropicBackend
from conjure_async.backends._hosted import AnthropicSkill
from conjure_async.events import ToolFinished
from conjure_async.messages import MessagesRequest
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import FakeAnthropicServer, collect, summarize, text_response
from tests.anthropic.constants import API_KEY, FAST
from tests.anthropic.skill_factory import make_skill

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def bash_use(call_id: str, command: str) -> dict[str, Any]:
    return {
        "type": "server_tool_use",
        "id": call_id,
        "name": "bash_code_execution",
        "input": {"command": command},
    }


def bash_result(
    call_id: str,
    stdout: str = "",
    *,
    code: int = 0,
    stderr: str = "",
    file_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "type": "bash_code_execution_tool_result",
        "tool_use_id": call_id,
        "content": {
            "type": "bash_code_execution_result",
            "stdout": stdout,
            "stderr": stderr,
            "return_code": code,
            "content": [{"type": "bash_code_execution_output", "file_id": f} for f in file_ids],
        },
    }


def answer(*content: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "content": list(content),
        "stop_reason": stop,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def _backend(
    server: FakeAnthropicServer,
    api: AnthropicAPI | None = None,
    skills: list[Any] | None = None,
    **options: Any,
) -> AnthropicBackend:
    if api is None:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", server.base_url)
        options.setdefault("retry", FAST)
    return AnthropicBackend(
        skills if skills is not None else [AnthropicSkill("xlsx")], api=api, **options
    )


# -- the request -----------------------------------------------------------------------


async def test_request_carries_code_execution_container_skills_and_betas(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))

    async with Session(_backend(server), model=model_factory()) as session:
        await session.chat("Make a sheet")

    sent = server.message_requests[0]
    assert sent.json["tools"] == [  # the last tool carries the default prompt-caching breakpoint
        {
            "type": "code_execution_20250825",
            "name": "code_execution",
            "cache_control": {"type": "ephemeral", "ttl": "5m"},
        }
    ]
    assert sent.json["container"] == {
        "skills": [{"type": "anthropic", "skill_id": "xlsx", "version": "latest"}]
    }
    assert sent.betas == ["code-execution-2025-08-25", "skills-2025-10-02", "files-api-2025-04-14"]


async def test_code_execution_tool_type_is_configurable(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))
    backend = _backend(server, code_execution_tool="code_execution_20260120")

    async with Session(backend, model=model_factory()) as session:
        await session.chat("Hi")

    assert server.message_bodies[0]["tools"][0]["type"] == "code_execution_20260120"


def test_code_execution_tool_is_not_added_twice() -> None:
    backend = AnthropicBackend()
    request = MessagesRequest(
        model="m",
        max_tokens=1,
        messages=[],
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
    )

    assert backend.prepare_request(request).tools == request.tools


async def test_skills_are_listed_without_location_in_the_system_prompt(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("ok"))

    async with Session(_backend(server), model=model_factory()) as session:
        await session.chat("Hi")

    blocks = server.message_bodies[0]["system"]  # text blocks: the last one is a breakpoint
    system = "".join(block["text"] for block in blocks)
    assert "<name>xlsx</name>" in system
    assert "<location>" not in system


# -- a hosted run -----------------------------------------------------------------------


def _paused_run(server: FakeAnthropicServer) -> str:
    file_id = server.add_file(b"month,total\nJan,10\n", "budget.csv", mime_type="text/csv")
    server.queue(
        answer(
            {"type": "text", "text": "Building it."},
            bash_use("srv_1", "ls /skills"),
            stop="pause_turn",
        ),
        answer(
            bash_result("srv_1", "xlsx\n"), bash_use("srv_2", "python make.py"), stop="pause_turn"
        ),
        answer(
            bash_result("srv_2", "saved\n", file_ids=(file_id,)),
            {"type": "text", "text": "Done: budget.csv"},
        ),
    )
    return file_id


async def test_hosted_run_with_two_pause_turns_emits_tool_events(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    file_id = _paused_run(server)

    async with Session(_backend(server), model=model_factory()) as session:
        events = await collect(session.stream("Build a budget"))

    assert summarize(events) == [
        "tool_started bash_code_execution",
        "paused 1",
        "tool_finished bash_code_execution ok",
        "tool_started bash_code_execution",
        "paused 2",
        "tool_finished bash_code_execution ok",
        "file_created budget.csv",  # named from the Files API metadata
        "turn_finished end_turn",
    ]
    (created,) = [e.file for e in events if e.kind == "file_created"]
    assert (created.file_id, created.size_bytes, created.mime_type) == (file_id, 19, "text/csv")


async def test_pause_continuations_resend_assistant_content_in_the_same_container(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    _paused_run(server)

    async with Session(_backend(server), model=model_factory()) as session:
        await session.chat("Build a budget")

    bodies = server.message_bodies
    container_id = bodies[1]["container"]["id"]
    assert container_id.startswith("container_fake")
    assert bodies[2]["container"]["id"] == container_id
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant"]
    assert bodies[1]["messages"][1]["content"][1]["id"] == "srv_1"
    assert [
        b.get("id") or b.get("tool_use_id")
        for b in bodies[2]["messages"][1]["content"]
        if b["type"] != "text"
    ] == ["srv_1", "srv_1", "srv_2"]


async def test_tool_finished_carries_stdout_stderr_and_exit_code(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(
        answer(
            bash_use("srv_1", "false"),
            bash_result("srv_1", "out\n", code=2, stderr="boom\n"),
            {"type": "text", "text": "It failed."},
        )
    )

    async with Session(_backend(server), model=model_factory()) as session:
        events = await collect(session.stream("Run it"))

    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert finished.model_dump(exclude={"duration_s"}) == {
        "kind": "tool_finished",
        "call_id": "srv_1",
        "name": "bash_code_execution",
        "backend": "anthropic",
        "output": "out\nboom\n\n[exit code 2]",
        "is_error": True,
        "exit_code": 2,
        "stdout": "out\n",
        "stderr": "boom\n",
        "timed_out": False,
    }


async def test_server_tool_error_variant_is_an_error_result(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    error = {
        "type": "bash_code_execution_tool_result",
        "tool_use_id": "srv_1",
        "content": {
            "type": "bash_code_execution_tool_result_error",
            "error_code": "execution_time_exceeded",
        },
    }
    server.queue(answer(bash_use("srv_1", "sleep 999"), error, {"type": "text", "text": "x"}))

    async with Session(_backend(server), model=model_factory()) as session:
        events = await collect(session.stream("Run it"))

    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert (finished.output, finished.is_error) == ("error: execution_time_exceeded", True)


async def test_text_editor_results_become_tool_events(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(
        answer(
            {
                "type": "server_tool_use",
                "id": "srv_1",
                "name": "text_editor_code_execution",
                "input": {"command": "create", "path": "/tmp/a.py", "file_text": "print(1)"},
            },
            {
                "type": "text_editor_code_execution_tool_result",
                "tool_use_id": "srv_1",
                "content": {
                    "type": "text_editor_code_execution_create_result",
                    "is_file_update": False,
                },
            },
            {"type": "text", "text": "Created."},
        )
    )

    async with Session(_backend(server), model=model_factory()) as session:
        events = await collect(session.stream("Write a.py"))

    assert summarize(events) == [
        "tool_started text_editor_code_execution",
        "tool_finished text_editor_code_execution ok",
        "turn_finished end_turn",
    ]


async def test_created_files_are_collected_and_downloaded(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    file_id = _paused_run(server)
    backend = _backend(server)

    async with Session(backend, model=model_factory()) as session:
        reply = await session.chat("Build a budget")
        paths = [await backend.download(f, tmp_path) for f in session.files]

    assert [(f.file_id, f.source) for f in reply.files] == [(file_id, "anthropic")]
    assert paths == [tmp_path / "budget.csv"]
    assert paths[0].read_bytes() == b"month,total\nJan,10\n"


# -- containers across turns and restores ------------------------------------------------


async def test_container_is_reused_on_the_next_turn(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("one"), text_response("two"))

    async with Session(_backend(server), model=model_factory()) as session:
        await session.chat("first")
        await session.chat("second")

    first, second = server.message_bodies
    assert "id" not in first["container"]
    assert second["container"]["id"].startswith("container_fake")


async def test_container_survives_dump_state_and_restore(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("one"), text_response("two"))
    model = model_factory()
    async with Session(_backend(server), model=model) as session:
        await session.chat("first")
        state = json.dumps(session.dump_state())

    restored = Session.restore(state, backend=_backend(server), model=model)
    async with restored:
        await restored.chat("second")

    first_container = server.message_requests[0]
    assert first_container.json["container"] == {
        "skills": [{"type": "anthropic", "skill_id": "xlsx", "version": "latest"}]
    }
    assert (
        server.message_bodies[1]["container"]["id"]
        == json.loads(state)["backends"][0]["state"]["container_id"]
    )


async def test_without_skills_the_container_is_the_plain_id(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(text_response("one"), text_response("two"))

    async with Session(_backend(server, skills=[]), model=model_factory()) as session:
        await session.chat("first")
        await session.chat("second")

    assert "container" not in server.message_bodies[0]
    assert server.message_bodies[1]["container"].startswith("container_fake")


# -- custom skills ------------------------------------------------------------------------


async def test_custom_skill_is_uploaded_before_the_first_turn(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    server.queue(text_response("ok"))
    skill = make_skill(tmp_path)

    async with Session(_backend(server, skills=[skill]), model=model_factory()) as session:
        await session.chat("Hi")

    (skill_id,) = server.custom_skill_ids
    (version,) = server.skill_versions(skill_id)
    assert [r.path for r in server.requests] == ["/v1/skills", "/v1/messages"]
    assert server.message_bodies[0]["container"]["skills"] == [
        {"type": "custom", "skill_id": skill_id, "version": version}
    ]
    assert sorted(server.skill_files(skill_id)) == [
        "budget-builder/SKILL.md",
        "budget-builder/scripts/run.py",
    ]


async def test_custom_skill_is_uploaded_once_and_reused_by_the_next_session(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    server.queue(text_response("one"), text_response("two"))
    skill = make_skill(tmp_path)
    model = model_factory()

    for message in ("first", "second"):
        async with Session(_backend(server, skills=[skill]), model=model) as session:
            await session.chat(message)

    assert server.skills_created == 1
    first, second = (b["container"]["skills"] for b in server.message_bodies)
    assert first == second


async def test_reuse_is_checked_against_the_api_and_reuploads_when_gone(
    server: FakeAnthropicServer, model_factory: ModelFactory, api: AnthropicAPI, tmp_path: Path
) -> None:
    server.queue(text_response("one"), text_response("two"))
    skill = make_skill(tmp_path)
    model = model_factory()
    async with Session(_backend(server, skills=[skill]), model=model) as session:
        await session.chat("first")
    await SkillsClient(api).delete_with_versions(server.custom_skill_ids[0])

    async with Session(_backend(server, skills=[skill]), model=model) as session:
        await session.chat("second")

    assert server.skills_created == 2


async def test_changed_skill_becomes_a_new_version_of_the_same_skill(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    server.queue(text_response("one"), text_response("two"))
    model = model_factory()
    async with Session(_backend(server, skills=[make_skill(tmp_path)]), model=model) as s:
        await s.chat("first")

    changed = make_skill(tmp_path, body="Do it better.")
    async with Session(_backend(server, skills=[changed]), model=model) as s:
        await s.chat("second")

    first, second = (b["container"]["skills"][0] for b in server.message_bodies)
    assert server.skills_created == 1
    assert first["skill_id"] == second["skill_id"]
    assert first["version"] != second["version"]


async def test_cleanup_deletes_versions_then_the_skill_on_close(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    server.queue(text_response("ok"))
    backend = _backend(server, skills=[make_skill(tmp_path)], cleanup=True)

    async with Session(backend, model=model_factory()) as session:
        await session.chat("Hi")
        (skill_id,) = server.custom_skill_ids

    deletes = [r.path for r in server.requests_to("/v1/skills", "DELETE")]
    assert deletes[-1] == f"/v1/skills/{skill_id}"
    assert deletes[0].startswith(f"/v1/skills/{skill_id}/versions/")
    assert server.custom_skill_ids == []


async def test_index_location_is_configurable(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    server.queue(text_response("ok"))
    index = tmp_path / "index" / "skills.json"
    skill = make_skill(tmp_path)

    async with Session(
        _backend(server, skills=[skill], index_path=index), model=model_factory()
    ) as session:
        await session.chat("Hi")

    entries = json.loads(index.read_text())["apis"][server.base_url]
    assert list(entries) == [skill.content_hash]


async def test_more_than_eight_skills_fail_before_any_network_call(
    server: FakeAnthropicServer,
) -> None:
    skills = [AnthropicSkill(f"s{n}") for n in range(9)]

    with pytest.raises(ValueError, match="at most 8"):
        AnthropicBackend(skills, api_key=API_KEY, base_url=server.base_url)

    assert server.requests == []


async def test_too_large_skill_fails_before_any_upload(
    server: FakeAnthropicServer, model_factory: ModelFactory, tmp_path: Path
) -> None:
    small = make_skill(tmp_path, "small-one")
    big = make_skill(tmp_path, "big-one", extra={"assets/blob.bin": b"\0" * (8 * 1024 * 1024)})

    with pytest.raises(SkillError, match="too large"):
        async with Session(_backend(server, skills=[small, big]), model=model_factory()):
            pass

    assert server.requests == []


async def test_a_failed_file_lookup_keeps_the_file_id_as_its_name(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    server.queue(
        answer(
            bash_result("srv_9", "saved\n", file_ids=("file_missing",)),
            {"type": "text", "text": "Done."},
        )
    )
    async with Session(_backend(server), model=model_factory()) as session:
        reply = await session.chat("Save it")
    assert [(f.name, f.file_id) for f in reply.files] == [("file_missing", "file_missing")]
