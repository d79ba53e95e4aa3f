"""The FastAPI and aiohttp service examples, driven over real HTTP on 127.0.0.1.

Every test runs against both frameworks: they share the session store and
promise the same endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from conjure_async.events import event_adapter
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response
from tests.helpers import process_alive, wait_for_file
from tests.services.support import FRAMEWORKS, Framework, poll_until, scripted, serve, sse_events

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("framework", FRAMEWORKS)]


def bash(command: str) -> dict[str, Any]:
    return tool_call("bash_tool", {"command": command, "description": "test command"})


def message(text: str) -> dict[str, str]:
    return {"text": text}


async def test_a_message_gets_the_reply_as_json(framework: Framework) -> None:
    model = scripted(tool_use_response(bash("echo hello")), text_response("It said hello."))
    async with serve(framework, model) as service, service.client() as client:
        response = await client.post("/conversations/c1/messages", json=message("Say hello"))

    assert response.status_code == 200
    reply = response.json()
    assert reply["text"] == "It said hello."
    assert reply["stop_reason"] == "end_turn"
    assert [(c["name"], c["output"], c["exit_code"]) for c in reply["tool_calls"]] == [
        ("bash_tool", "hello\n", 0)
    ]


async def test_a_conversation_keeps_its_history_across_requests(framework: Framework) -> None:
    seen: list[int] = []

    def answer(request: MessagesRequest) -> MessagesResponse:
        seen.append(len(request.messages))
        return text_response(f"message {len(seen)}")

    async with serve(framework, scripted(answer, answer)) as service, service.client() as client:
        first = await client.post("/conversations/c1/messages", json=message("one"))
        second = await client.post("/conversations/c1/messages", json=message("two"))

    assert [first.json()["text"], second.json()["text"]] == ["message 1", "message 2"]
    assert seen == [1, 3]  # user; then user, assistant, user


async def test_the_stream_forwards_each_event_as_it_happens(framework: Framework) -> None:
    model = scripted(
        tool_use_response(bash("echo report > report.txt && echo written")),
        text_response("Wrote report.txt."),
    )
    async with (
        serve(framework, model) as service,
        service.client() as client,
        client.stream(
            "POST", "/conversations/c1/messages/stream", json=message("Write a report")
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [frame async for frame in sse_events(response)]

    for kind, data in frames:  # every frame is a valid conjure event of its kind
        assert event_adapter.validate_python(data).kind == kind
    kinds = [kind for kind, _ in frames if kind != "tool_output"]
    assert kinds == [
        "model_responded",
        "tool_started",
        "tool_finished",
        "file_created",
        "text_delta",
        "model_responded",
        "turn_finished",
    ]
    by_kind = dict(frames)
    assert by_kind["file_created"]["file"]["name"] == "report.txt"
    assert by_kind["turn_finished"]["reply"]["text"] == "Wrote report.txt."


async def test_a_file_a_tool_created_can_be_downloaded(framework: Framework) -> None:
    model = scripted(
        tool_use_response(bash("printf 'a,b\\n1,2\\n' > table.csv")), text_response("Done.")
    )
    async with serve(framework, model) as service, service.client() as client:
        await client.post("/conversations/c1/messages", json=message("Make a table"))
        response = await client.get("/conversations/c1/files/table.csv")

    assert response.status_code == 200
    assert response.text == "a,b\n1,2\n"
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''table.csv"


@pytest.mark.parametrize(
    "path",
    [
        "/conversations/c1/files/..%2F..%2F..%2Fetc%2Fpasswd",
        "/conversations/c1/files/%2Fetc%2Fpasswd",
        "/conversations/c1/files/passwd",
        "/conversations/c1/files/..",
        "/conversations/other/files/table.csv",
    ],
)
async def test_only_the_conversations_own_files_are_served(framework: Framework, path: str) -> None:
    model = scripted(tool_use_response(bash("echo x > table.csv")), text_response("Done."))
    async with serve(framework, model) as service, service.client() as client:
        await client.post("/conversations/c1/messages", json=message("Make a table"))
        response = await client.get(path)

    assert response.status_code == 404
    assert "root:" not in response.text


async def test_another_tenant_cannot_read_a_conversations_files(framework: Framework) -> None:
    model = scripted(tool_use_response(bash("echo x > table.csv")), text_response("Done."))
    async with serve(framework, model) as service, service.client() as client:
        await client.post(
            "/conversations/c1/messages", json=message("Make"), headers={"X-Tenant": "acme"}
        )
        own = await client.get("/conversations/c1/files/table.csv", headers={"X-Tenant": "acme"})
        other = await client.get("/conversations/c1/files/table.csv", headers={"X-Tenant": "evil"})

    assert (own.status_code, other.status_code) == (200, 404)


async def test_an_idle_conversation_is_closed_and_its_workdir_removed(
    framework: Framework,
) -> None:
    model = scripted(tool_use_response(bash("pwd")), text_response("Done."))
    async with (
        serve(framework, model, idle_ttl=0.05, sweep_interval=0.01) as service,
        service.client() as client,
    ):
        response = await client.post("/conversations/c1/messages", json=message("Where?"))
        workdir = Path(response.json()["tool_calls"][0]["output"].strip())
        assert workdir.name.startswith("conjure-")

        await poll_until(lambda: not workdir.exists() and len(service.store) == 0)

        assert service.store.conversations() == []


async def test_a_conversation_in_use_outlives_the_idle_ttl(framework: Framework) -> None:
    model = scripted(tool_use_response(bash("sleep 0.3; echo still here")), text_response("ok"))
    async with (
        serve(framework, model, idle_ttl=0.02, sweep_interval=0.005) as service,
        service.client() as client,
    ):
        response = await client.post("/conversations/c1/messages", json=message("Wait"))

    assert response.status_code == 200
    assert response.json()["tool_calls"][0]["output"] == "still here\n"


async def test_a_tenant_over_its_limit_gets_429_while_others_are_served(
    framework: Framework,
) -> None:
    gate, entered = anyio.Event(), anyio.Event()

    async def answer(request: MessagesRequest) -> MessagesResponse:
        if request.messages[0].content == "slow":
            entered.set()
            await gate.wait()
        return text_response("ok")

    async with (
        serve(framework, lambda: ScriptedModel(answer), tenant_limit=1) as service,
        service.client() as client,
        anyio.create_task_group() as tg,
    ):
        acme = {"X-Tenant": "acme"}
        first: list[httpx2.Response] = []

        async def slow_chat() -> None:
            first.append(
                await client.post("/conversations/a/messages", json=message("slow"), headers=acme)
            )

        tg.start_soon(slow_chat)
        await entered.wait()
        refused = await client.post("/conversations/b/messages", json=message("hi"), headers=acme)
        other_tenant = await client.post(
            "/conversations/b/messages", json=message("hi"), headers={"X-Tenant": "globex"}
        )
        gate.set()
        await poll_until(lambda: bool(first))
        after = await client.post("/conversations/b/messages", json=message("hi"), headers=acme)

    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    assert "acme" in refused.json()["detail"]
    assert [other_tenant.status_code, first[0].status_code, after.status_code] == [200, 200, 200]


@pytest.mark.parametrize("endpoint", ["messages/stream", "messages"])
async def test_a_client_disconnect_cancels_the_chat_and_kills_its_processes(
    framework: Framework, endpoint: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "sleep.pid"
    model = scripted(
        tool_use_response(bash(f"sleep 60 & echo $! > {pidfile}; wait")),
        text_response("Back again."),
    )
    async with serve(framework, model) as service:
        async with service.client() as client, anyio.create_task_group() as tg:

            async def chat() -> None:
                async with client.stream(
                    "POST", f"/conversations/c1/{endpoint}", json=message("Sleep")
                ) as response:
                    await response.aread()

            tg.start_soon(chat)
            pid = int(await wait_for_file(pidfile))
            assert process_alive(pid)
            tg.cancel_scope.cancel()  # the client goes away mid-request

        await poll_until(lambda: not process_alive(pid))

        async with service.client() as client:  # the conversation goes on
            again = await client.post("/conversations/c1/messages", json=message("Hello?"))
        assert (again.status_code, again.json()["text"]) == (200, "Back again.")


async def test_a_failing_chat_is_a_502_with_its_error_type(framework: Framework) -> None:
    async with serve(framework, scripted()) as service, service.client() as client:
        response = await client.post("/conversations/c1/messages", json=message("Hi"))

    assert response.status_code == 502
    assert response.json()["error_type"] == "ModelResponseError"


async def test_a_chat_failing_mid_stream_ends_with_an_error_event(framework: Framework) -> None:
    async with (
        serve(framework, scripted(tool_use_response(bash("echo ok")))) as service,
        service.client() as client,
        client.stream("POST", "/conversations/c1/messages/stream", json=message("Hi")) as response,
    ):
        frames = [frame async for frame in sse_events(response)]

    assert response.status_code == 200
    kind, error = frames[-1]
    assert (kind, error["error_type"]) == ("error", "ModelResponseError")


async def test_a_message_without_text_is_refused(framework: Framework) -> None:
    async with serve(framework, scripted()) as service, service.client() as client:
        response = await client.post("/conversations/c1/messages", json={"text": ""})

    assert response.status_code == 422


async def test_the_chat_page_is_served_at_the_root(framework: Framework) -> None:
    async with serve(framework, scripted()) as service, service.client() as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form id="form">' in response.text


async def test_the_page_says_which_model_answers_and_that_a_scripted_one_is_not_claude(
    framework: Framework,
) -> None:
    """``GET /model`` names the model and says it is scripted; the page has the note for it."""
    from examples.services.demo import demo_model

    async with serve(framework, demo_model) as service, service.client() as client:
        about = await client.get("/model")
        page = await client.get("/")
    assert about.status_code == 200
    assert about.json() == {"model": "scripted-demo", "scripted": True}
    assert 'data-testid="model-note"' in page.text


async def test_a_created_file_replaced_by_a_symlink_out_is_not_served(framework: Framework) -> None:
    """A tool makes table.csv, then swaps it for a symlink to /etc/passwd: 404, never the file."""
    model = scripted(
        tool_use_response(bash("echo x > table.csv")),
        tool_use_response(bash("rm table.csv && ln -s /etc/passwd table.csv")),
        text_response("Done."),
    )
    async with serve(framework, model) as service, service.client() as client:
        await client.post("/conversations/c1/messages", json=message("Make a table"))
        response = await client.get("/conversations/c1/files/table.csv")

    assert response.status_code == 404
    assert "root:" not in response.text
