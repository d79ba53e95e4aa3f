"""The web service examples serve files a Docker sandbox created (#10 item 29)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conjure_async.backends import DockerBackend
from conjure_async.testing import text_response, tool_call, tool_use_response
from tests.services.support import FRAMEWORKS, Framework, scripted, serve

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_file_made_in_the_container_is_served(
    framework: Framework, make_backend: Callable[..., DockerBackend]
) -> None:
    """bash_tool writes a file inside the container; GET .../files/NAME returns its bytes."""
    model = scripted(
        tool_use_response(
            tool_call(
                "bash_tool",
                {"command": "printf 'a,b\\n1,2\\n' > table.csv", "description": "table"},
            )
        ),
        text_response("Done."),
    )
    async with (
        serve(framework, model, make_backend=make_backend) as service,
        service.client() as client,
    ):
        posted = await client.post("/conversations/c1/messages", json={"text": "Make a table"})
        assert posted.status_code == 200, posted.text
        response = await client.get("/conversations/c1/files/table.csv")
        missing = await client.get("/conversations/c1/files/passwd")

    assert response.status_code == 200
    assert response.content == b"a,b\n1,2\n"
    assert missing.status_code == 404
