"""Typed output: ``chat(..., output_type=T)`` returns ``reply.output`` validated as ``T``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel, Field

from conjure_async import OutputValidationError, Session
from conjure_async.backends import NativeBackend
from conjure_async.messages import MessagesRequest, MessagesResponse, ToolResultBlock
from conjure_async.models import AnthropicModel
from conjure_async.testing import (
    FakeAnthropicServer,
    ScriptedModel,
    text_response,
    tool_call,
    tool_use_response,
)

pytestmark = pytest.mark.anyio


class Invoice(BaseModel):
    """An invoice."""

    customer: str
    total: float = Field(ge=0)
    lines: list[str]


class Tree(BaseModel):
    """A recursive type: the native format cannot express it."""

    name: str
    children: list[Tree] = []


GOOD = {"customer": "ACME", "total": 12.5, "lines": ["bolts"]}


def output_format(request: MessagesRequest) -> Any:
    extra = request.model_extra or {}
    return (extra.get("output_config") or {}).get("format")


async def test_the_answer_is_validated_into_reply_output_with_the_native_format() -> None:
    """The request carries output_config.format (a strict schema); reply.output is an Invoice."""
    model = ScriptedModel([text_response(json.dumps(GOOD))])
    async with Session(model=model) as session:
        reply = await session.chat("Bill ACME", output_type=Invoice)
    assert reply.output == Invoice(**GOOD)
    assert isinstance(reply.output, Invoice)
    sent = output_format(model.requests[0])
    assert sent["type"] == "json_schema"
    schema = sent["schema"]
    assert schema["additionalProperties"] is False
    assert "minimum" not in json.dumps(schema)  # left to pydantic, the API does not take it
    assert schema["required"] == ["customer", "total", "lines"]


async def test_an_invalid_answer_goes_back_with_its_errors_and_the_retry_counts() -> None:
    """total < 0 fails validation: the model reads the error and answers again."""
    bad = dict(GOOD, total=-1)
    model = ScriptedModel([text_response(json.dumps(bad)), text_response(json.dumps(GOOD))])
    async with Session(model=model) as session:
        reply = await session.chat("Bill ACME", output_type=Invoice)
    assert reply.output == Invoice(**GOOD)
    retry = model.requests[1].messages[-1]
    assert retry.role == "user"
    assert "total: Input should be greater than or equal to 0" in str(retry.content)
    assert reply.iterations == 2
    assert reply.usage.input_tokens == 20  # both model calls counted


async def test_past_the_retries_a_typed_error_and_the_conversation_goes_on() -> None:
    """After output_retries invalid answers: OutputValidationError; the history stays valid."""
    model = ScriptedModel(
        [text_response("not json"), text_response("{}"), text_response("plain again")]
    )
    async with Session(model=model) as session:
        with pytest.raises(OutputValidationError) as caught:
            await session.chat("Bill ACME", output_type=Invoice, output_retries=1)
        assert caught.value.retries == 1
        assert "customer: Field required" in caught.value.errors
        assert caught.value.output == "{}"
        again = await session.chat("never mind")
    assert again.text == "plain again"


async def test_a_type_that_is_not_an_object_is_wrapped_as_result() -> None:
    """list[int] travels as {"result": [...]} (the format needs an object)."""
    model = ScriptedModel([text_response('{"result": [3, 1, 2]}')])
    async with Session(model=model) as session:
        reply = await session.chat("Three numbers", output_type=list[int])
    assert reply.output == [3, 1, 2]
    assert output_format(model.requests[0])["schema"]["required"] == ["result"]


async def test_tools_run_before_the_typed_answer() -> None:
    """The turn uses tools as usual; the final text is the typed answer."""

    async def lookup(customer: str) -> str:
        """Look a customer up."""
        return f"{customer}: 12.5 owed"

    model = ScriptedModel(
        [
            tool_use_response(tool_call("lookup", {"customer": "ACME"})),
            text_response(json.dumps(GOOD)),
        ]
    )
    async with Session(NativeBackend(lookup), model=model) as session:
        reply = await session.chat("Bill ACME", output_type=Invoice)
    assert reply.output == Invoice(**GOOD)
    assert [c.name for c in reply.tool_calls] == ["lookup"]
    assert all(output_format(r) is not None for r in model.requests)


def answer_tool(request: MessagesRequest) -> MessagesResponse:
    """The model answering through the final_answer tool (invalid first, then valid)."""
    last = request.messages[-1]
    results = (
        [b for b in last.content if isinstance(b, ToolResultBlock)]
        if isinstance(last.content, list)
        else []
    )
    if not results:
        return tool_use_response(tool_call("final_answer", {"name": 7}))
    if results[0].is_error:
        tree = {"name": "root", "children": [{"name": "leaf", "children": []}]}
        return tool_use_response(tool_call("final_answer", tree))
    return text_response("Here is the tree.")


async def test_a_recursive_type_is_answered_through_the_final_answer_tool() -> None:
    """No native format for a recursive schema: a final_answer tool, validated the same way."""
    model = ScriptedModel(answer_tool)
    async with Session(model=model) as session:
        reply = await session.chat("A tree", output_type=Tree)
        assert session.tools == []  # the answer tool was the turn's only
    assert reply.output == Tree(name="root", children=[Tree(name="leaf")])
    first = model.requests[0]
    assert output_format(first) is None
    assert [t["name"] for t in first.tools or []] == ["final_answer"]
    error = model.requests[1].messages[-1].content[0]
    assert isinstance(error, ToolResultBlock)
    assert error.is_error
    assert "name: Input should be a valid string" in str(error.content)


async def test_the_fake_server_takes_the_native_format_over_real_http() -> None:
    """AnthropicModel sends output_config; FakeAnthropicServer checks it like the API."""
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return text_response(json.dumps(GOOD)).to_wire()

    async with (
        FakeAnthropicServer(answer) as server,
        AnthropicModel(api_key="sk-ant-test-key", base_url=server.base_url) as model,
        Session(model=model) as session,
    ):
        reply = await session.chat("Bill ACME", output_type=Invoice)
    assert reply.output == Invoice(**GOOD)
    assert seen[0]["output_config"]["format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    "output_config",
    [
        {"format": {"type": "json_object"}},
        {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        {"format": {"type": "json_schema", "schema": {"type": "array"}}},
    ],
)
async def test_the_fake_server_refuses_a_format_the_api_refuses(
    output_config: dict[str, Any],
) -> None:
    """A wrong type, an open object or a non-object schema: 400, as the API answers."""
    async with (
        FakeAnthropicServer([text_response("x")]) as server,
        httpx2.AsyncClient(
            base_url=server.base_url, headers={"anthropic-version": "2023-06-01"}
        ) as client,
    ):
        response = await client.post(
            "/v1/messages",
            json={
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "output_config": output_config,
            },
        )
    assert response.status_code == 400
    assert "output_config" in response.text


def test_mypy_infers_the_output_type(tmp_path: Path) -> None:
    """``chat(..., output_type=Invoice)`` is a ``Reply[Invoice]`` to mypy; plain chat() not."""
    snippet = tmp_path / "typed.py"
    snippet.write_text(
        "from pydantic import BaseModel\n"
        "from conjure_async import Session\n"
        "class Invoice(BaseModel):\n    total: float\n"
        "async def f(s: Session) -> None:\n"
        "    reveal_type((await s.chat('x', output_type=Invoice)).output)\n"
        "    reveal_type((await s.chat('x')).output)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 'Revealed type is "typed.Invoice | None"' in result.stdout, result.stdout
    assert 'Revealed type is "None"' in result.stdout, result.stdout
