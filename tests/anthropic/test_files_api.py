"""The Files API client against the fake server: metadata, downloads, uploads, pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from conjure_async._exceptions import BadRequestError, NotFoundError
from conjure_async.anthropic import AnthropicAPI, FileInfo, FilesClient, safe_filename
from conjure_async.testing import FakeAnthropicServer

pytestmark = pytest.mark.anyio


async def test_metadata_reads_the_file_object(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    file_id = server.add_file(b"a,b\n1,2\n", "data.csv", mime_type="text/csv")

    info = await FilesClient(api).metadata(file_id)

    assert (info.id, info.filename, info.mime_type, info.size_bytes, info.downloadable) == (
        file_id,
        "data.csv",
        "text/csv",
        8,
        True,
    )


async def test_requests_send_the_files_beta_header(
    server: FakeAnthropicServer, api: AnthropicAPI
) -> None:
    file_id = server.add_file(b"x", "x.txt")

    await FilesClient(api).metadata(file_id)

    assert server.requests_to("/v1/files")[0].betas == ["files-api-2025-04-14"]


async def test_download_streams_to_the_metadata_name(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    content = bytes(range(256)) * 1000
    file_id = server.add_file(content, "report.xlsx")

    path = await FilesClient(api).download(file_id, tmp_path / "out")

    assert path == tmp_path / "out" / "report.xlsx"
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.xlsx"]


async def test_download_never_leaves_the_directory(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    file_id = server.add_file(b"x", "../../etc/passwd")

    path = await FilesClient(api).download(file_id, tmp_path)

    assert path == tmp_path / "passwd"


async def test_download_refuses_to_overwrite(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    file_id = server.add_file(b"new", "report.txt")
    (tmp_path / "report.txt").write_bytes(b"old")

    with pytest.raises(FileExistsError):
        await FilesClient(api).download(file_id, tmp_path)

    assert (tmp_path / "report.txt").read_bytes() == b"old"


async def test_download_overwrites_when_asked(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    file_id = server.add_file(b"new", "report.txt")
    (tmp_path / "report.txt").write_bytes(b"old")

    path = await FilesClient(api).download(file_id, tmp_path, overwrite=True)

    assert path.read_bytes() == b"new"


async def test_failed_download_leaves_no_file(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    file_id = (await FilesClient(api).upload(b"secret", filename="in.txt")).id

    with pytest.raises(BadRequestError, match="not downloadable"):
        await FilesClient(api).download(file_id, tmp_path, filename="in.txt")

    assert list(tmp_path.iterdir()) == []


async def test_upload_sends_multipart_file_field(
    server: FakeAnthropicServer, api: AnthropicAPI, tmp_path: Path
) -> None:
    source = tmp_path / "notes.md"
    source.write_text("# Notes\n", encoding="utf-8")

    info = await FilesClient(api).upload(source)

    part = server.requests_to("/v1/files", "POST")[0].parts[0]
    assert (part.name, part.filename, part.content) == ("file", "notes.md", b"# Notes\n")
    assert (info.filename, info.downloadable) == ("notes.md", False)


async def test_read_returns_the_bytes(server: FakeAnthropicServer, api: AnthropicAPI) -> None:
    file_id = server.add_file(b"hello", "h.txt")

    assert await FilesClient(api).read(file_id) == b"hello"


async def test_delete_removes_the_file(server: FakeAnthropicServer, api: AnthropicAPI) -> None:
    file_id = server.add_file(b"x", "x.txt")
    client = FilesClient(api)

    deleted = await client.delete(file_id)

    assert (deleted.id, deleted.type) == (file_id, "file_deleted")
    with pytest.raises(NotFoundError):
        await client.metadata(file_id)


@pytest.mark.parametrize("beta", [True, False])
async def test_list_follows_pages_in_both_shapes(
    server: FakeAnthropicServer, api: AnthropicAPI, beta: bool
) -> None:
    ids = [server.add_file(b"x", f"f{n}.txt") for n in range(5)]

    listed = [f.id async for f in FilesClient(api, beta=beta).list(limit=2)]

    assert listed == ids
    assert len(server.requests_to("/v1/files", "GET")) == 3


def test_ga_metadata_with_expiry_is_understood() -> None:
    info = FileInfo.from_wire(
        {"id": "file_1", "type": "file", "filename": "a.txt", "expires_at": "2030-01-01T00:00:00Z"}
    )

    assert (info.filename, info.expires_at, info.downloadable) == (
        "a.txt",
        "2030-01-01T00:00:00Z",
        None,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.xlsx", "report.xlsx"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.bat", "evil.bat"),
        ('a<b>:c"d|e?f*g.txt', "a_b__c_d_e_f_g.txt"),
        ("..", "file_1"),
        ("line\nbreak.txt", "line_break.txt"),
        (".hidden", "hidden"),
        ("", "file_1"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, fallback="file_1") == expected


def test_safe_filename_caps_length_keeping_the_suffix() -> None:
    name = safe_filename("x" * 300 + ".csv")

    assert (len(name), name[-4:]) == (255, ".csv")
