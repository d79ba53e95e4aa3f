"""``session.download`` for files the hosted container created (#10 item 29, hosted part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conjure_async import Session
from conjure_async._exceptions import BackendError
from conjure_async.anthropic import AnthropicAPI
from conjure_async.backends import AnthropicBackend
from conjure_async.backends._hosted import AnthropicSkill
from conjure_async.events import CreatedFile
from conjure_async.models._anthropic import AnthropicModel
from conjure_async.testing import ErrorResponse, FakeAnthropicServer
from tests.anthropic.constants import API_KEY, FAST
from tests.anthropic.responses import saved_files_answer

pytestmark = pytest.mark.anyio


def _session(server: FakeAnthropicServer, model: AnthropicModel) -> Session[Any]:
    backend = AnthropicBackend(
        [AnthropicSkill("xlsx")], api_key=API_KEY, base_url=server.base_url, retry=FAST
    )
    return Session(backend, model=model)


@pytest.fixture
async def model(server: FakeAnthropicServer) -> Any:
    async with AnthropicModel(api_key=API_KEY, base_url=server.base_url, retry=FAST) as client:
        yield client


async def test_session_download_fetches_a_hosted_file(
    server: FakeAnthropicServer, model: AnthropicModel, tmp_path: Path
) -> None:
    """The reported file comes through the Files API under its own (safe) name."""
    file_id = server.add_file(b"month,total\nJan,10\n", "budget.csv", mime_type="text/csv")
    server.queue(saved_files_answer(file_id))
    out = tmp_path / "out"

    async with _session(server, model) as session:
        reply = await session.chat("Build a budget")
        (created,) = reply.files
        path = await session.download(created, out)

    assert path == out / "budget.csv"
    assert path.read_bytes() == b"month,total\nJan,10\n"
    assert sorted(p.name for p in out.iterdir()) == ["budget.csv"]


async def test_download_keeps_an_existing_file_unless_overwrite(
    server: FakeAnthropicServer, model: AnthropicModel, tmp_path: Path
) -> None:
    """``FileExistsError`` without ``overwrite``; the old content stays; ``overwrite`` replaces."""
    file_id = server.add_file(b"new", "report.txt")
    server.queue(saved_files_answer(file_id))
    (tmp_path / "report.txt").write_bytes(b"old")

    async with _session(server, model) as session:
        (created,) = (await session.chat("Write it")).files
        with pytest.raises(FileExistsError):
            await session.download(created, tmp_path)
        assert (tmp_path / "report.txt").read_bytes() == b"old"
        path = await session.download(created, tmp_path, overwrite=True)

    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


async def test_a_hostile_file_name_stays_inside_the_directory(
    server: FakeAnthropicServer, model: AnthropicModel, tmp_path: Path
) -> None:
    """A name like ``../../evil`` from the container is made safe: nothing lands outside."""
    file_id = server.add_file(b"x", "../../evil.sh")
    server.queue(saved_files_answer(file_id))
    out = tmp_path / "a" / "b"

    async with _session(server, model) as session:
        (created,) = (await session.chat("Go")).files
        path = await session.download(created, out)

    assert path.parent == out
    assert path.name == "evil.sh"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["evil.sh"]


async def test_a_file_gone_from_the_files_api_is_file_not_found(
    server: FakeAnthropicServer, model: AnthropicModel, api: AnthropicAPI, tmp_path: Path
) -> None:
    """A deleted file raises ``FileNotFoundError`` (as on every backend) and leaves nothing."""
    file_id = server.add_file(b"x", "gone.txt")
    server.queue(saved_files_answer(file_id))

    async with _session(server, model) as session:
        (created,) = (await session.chat("Go")).files
        await api.request("DELETE", f"/v1/files/{file_id}")
        with pytest.raises(FileNotFoundError, match=r"gone\.txt"):
            await session.download(created, tmp_path / "out")

    assert list((tmp_path / "out").iterdir()) == []


async def test_a_files_api_failure_is_a_backend_error(
    server: FakeAnthropicServer, model: AnthropicModel, tmp_path: Path
) -> None:
    """Any other Files API failure is the backend failing to copy: ``BackendError``, chained."""
    file_id = server.add_file(b"x", "f.txt")
    server.queue(saved_files_answer(file_id))

    async with _session(server, model) as session:
        (created,) = (await session.chat("Go")).files
        server.inject(ErrorResponse(403, message="no access"), path="/v1/files")
        with pytest.raises(BackendError, match=r"f\.txt") as caught:
            await session.download(created, tmp_path)

    assert caught.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


async def test_a_file_without_a_file_id_is_refused_clearly(
    server: FakeAnthropicServer, model: AnthropicModel, tmp_path: Path
) -> None:
    """A file this backend never reported (no ``file_id``) raises ``BackendError``."""
    server.queue(saved_files_answer())
    stray = CreatedFile(name="x.txt", source="anthropic")

    async with _session(server, model) as session:
        await session.chat("Go")
        with pytest.raises(BackendError, match=r"x\.txt"):
            await session.download(stray, tmp_path)
