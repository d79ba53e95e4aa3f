"""Session.download for files the Local backend reported (#10 item 29, Local part)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conjure_async import Session
from conjure_async.backends import LocalBackend
from conjure_async.events import CreatedFile
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio


async def test_download_copies_a_reported_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """A file a command made is copied out; a second copy needs overwrite=True."""
    command = "printf 'first' > report.txt"
    model = ScriptedModel(
        [
            tool_use_response(tool_call("bash_tool", {"command": command, "description": "d"})),
            text_response("k"),
        ]
    )
    out = tmp_path / "out"
    async with Session(LocalBackend(), model=model) as session:
        await session.chat("go")
        (made,) = session.files
        path = await session.download(made, out)
        assert path == out / "report.txt"
        assert path.read_text() == "first"
        with pytest.raises(FileExistsError):
            await session.download(made, out)
        (session.backends[0].workdir / "report.txt").write_text("second")  # type: ignore[attr-defined]
        again = await session.download(made, out, overwrite=True)
    assert again.read_text() == "second"
    assert sorted(p.name for p in out.iterdir()) == ["report.txt"]  # no partial files left


async def test_download_refuses_files_outside_the_workdir(tmp_path: Path) -> None:
    """Forged paths, symlinks out of the work dir and named pipes are refused, promptly."""
    (tmp_path / "secret.txt").write_text("secret")
    work = tmp_path / "work"
    work.mkdir()
    (work / "link.txt").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(work / "pipe")
    out = tmp_path / "out"
    async with Session(LocalBackend(workdir=work), model=ScriptedModel([])) as session:
        for path in [str(tmp_path / "secret.txt"), "../secret.txt", str(work / "link.txt")]:
            with pytest.raises(FileNotFoundError, match="not in the working directory"):
                await session.download(CreatedFile(name="x", source="local", path=path), out)
        with pytest.raises(FileNotFoundError, match="not a regular file"):
            await session.download(CreatedFile(name="p", source="local", path="pipe"), out)
    assert not out.exists() or list(out.iterdir()) == []
