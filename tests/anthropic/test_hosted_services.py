"""The web service examples serve files the hosted container created (#10 item 29)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conjure_async.backends import AnthropicBackend
from conjure_async.models import AnthropicModel
from conjure_async.testing import FakeAnthropicServer
from tests.anthropic.responses import saved_files_answer
from tests.services.support import FRAMEWORKS, Framework, serve

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_file_made_in_the_hosted_container_is_served(
    framework: Framework,
    server: FakeAnthropicServer,
    model_factory: Callable[..., AnthropicModel],
) -> None:
    """The container made budget.csv; GET .../files/budget.csv fetches it via the Files API."""
    file_id = server.add_file(b"month,total\nJan,10\n", "budget.csv", mime_type="text/csv")
    server.queue(saved_files_answer(file_id, text="Saved budget.csv."))
    model = model_factory()
    async with (
        serve(
            framework,
            lambda: model,
            make_backend=lambda: AnthropicBackend([], api=model.api),
        ) as service,
        service.client() as client,
    ):
        posted = await client.post("/conversations/c1/messages", json={"text": "Budget"})
        assert posted.status_code == 200, posted.text
        response = await client.get("/conversations/c1/files/budget.csv")

    assert response.status_code == 200
    assert response.content == b"month,total\nJan,10\n"
