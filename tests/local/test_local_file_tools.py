"""Local file tools against hostile files: pipes, huge files, non-UTF-8 text (#10 items 1-4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from conjure_async import Session
from conjure_async.backends import LocalBackend
from conjure_async.backends.docker._scripts import FILE_HELPER
from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

pytestmark = pytest.mark.anyio

SANDBOXES = ["none", "bwrap"]


def _view(path: str, **extra: Any) -> dict[str, Any]:
    return tool_call("view", {"path": path, **extra})


def _create(path: str, text: str) -> dict[str, Any]:
    return tool_call("create_file", {"path": path, "file_text": text, "description": "d"})


def _replace(path: str, old: str, new: str) -> dict[str, Any]:
    return tool_call(
        "str_replace", {"path": path, "old_str": old, "new_str": new, "description": "d"}
    )


async def _run(backend: LocalBackend, *calls: dict[str, Any], **options: Any) -> list[Any]:
    """Run ``calls`` one per model response (so two calls never meet on one pipe)."""
    model = ScriptedModel([*(tool_use_response(c) for c in calls), text_response("done")])
    async with Session(backend, model=model, **options) as session:
        reply = await session.chat("go")
    return reply.tool_calls


def _unblock_fifo(path: Path) -> None:
    """Release any open() or read() stuck on the pipe ``path`` (rescue for the old code)."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    os.close(fd)


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_file_tools_refuse_a_named_pipe_without_blocking(
    tmp_path: Path, sandbox: str, request: pytest.FixtureRequest
) -> None:
    """view, create_file and str_replace on a FIFO return an error result; nothing blocks."""
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    calls = [_view("f"), _create("f", "x"), _replace("f", "a", "b")]
    records: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def rescue() -> None:
            # Only matters on code that blocks: unblock it so the test fails instead of hanging.
            await anyio.sleep(20)
            for _ in range(len(calls) * 2):
                await anyio.to_thread.run_sync(_unblock_fifo, fifo)

        tg.start_soon(rescue)
        with anyio.fail_after(60):
            records = await _run(
                LocalBackend(workdir=tmp_path, sandbox=sandbox),  # type: ignore[arg-type]
                *calls,
                tool_timeout=3,
            )
        tg.cancel_scope.cancel()
    assert [r.is_error for r in records] == [True, True, True]
    for record in records:
        assert "not a regular file" in record.output
        assert "timed out" not in record.output
    assert fifo.is_fifo()


async def test_outer_cancellation_ends_a_file_tool_on_a_pipe(tmp_path: Path) -> None:
    """An outer anyio.fail_after ends a chat whose view hits a FIFO (nothing uncancellable)."""
    os.mkfifo(tmp_path / "f")
    model = ScriptedModel([tool_use_response(_view("f")), text_response("done")])
    async with Session(LocalBackend(workdir=tmp_path), model=model) as session:
        with anyio.move_on_after(30) as scope:
            reply = await session.chat("go")
        if scope.cancelled_caught:  # the old code: rescue the stuck thread, then fail
            _unblock_fifo(tmp_path / "f")
            pytest.fail("the view blocked on a named pipe")
    assert reply.tool_calls[0].is_error


_BIG_VIEW = textwrap.dedent(
    """
    import json, os, resource, sys
    import anyio
    from conjure_async import Session
    from conjure_async.backends import LocalBackend
    from conjure_async.testing import ScriptedModel, text_response, tool_call, tool_use_response

    workdir, kind, view_range = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    path = os.path.join(workdir, "big.txt")
    with open(path, "wb") as f:
        if kind == "text":
            f.write(b"hello world\\n" * 1000)
        f.truncate(3 * 1024**3)
    args = {"path": "big.txt"}
    if view_range:
        args["view_range"] = view_range

    async def main():
        model = ScriptedModel([tool_use_response(tool_call("view", args)), text_response("k")])
        async with Session(LocalBackend(workdir=workdir), model=model) as session:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with open("/proc/self/status") as f:
                vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
            # 3 GB cannot be read into memory under this limit
            resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 1024**2, resource.RLIM_INFINITY))
            reply = await session.chat("go")
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        call = reply.tool_calls[0]
        print(json.dumps({"output": call.output, "is_error": call.is_error,
                          "growth_kb": after - before}))

    anyio.run(main)
    """
)


@pytest.mark.parametrize(
    ("kind", "view_range"),
    [("text", None), ("text", [999, 1001]), ("zeros", None)],
    ids=["text-head", "text-range-into-a-3GB-line", "binary"],
)
def test_view_of_a_3gb_file_reads_only_what_it_returns(
    tmp_path: Path, kind: str, view_range: list[int] | None
) -> None:
    """Viewing a 3 GB sparse file works under a 512 MB address-space limit and says its size."""
    done = subprocess.run(
        [sys.executable, "-c", _BIG_VIEW, str(tmp_path), kind, json.dumps(view_range)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["growth_kb"] < 64 * 1024
    assert "3221225472 bytes" in result["output"]
    if kind == "text":
        assert not result["is_error"]
        first = 999 if view_range else 1
        assert result["output"].startswith(f"{first:6}\thello world\n")
        assert "view_range" in result["output"]  # how to page on
    else:
        assert "binary" in result["output"]


async def test_view_pages_a_long_file_with_a_note(tmp_path: Path) -> None:
    """A file longer than the output limit shows whole lines up to the limit, then how to go on."""
    (tmp_path / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    (record,) = await _run(LocalBackend(workdir=tmp_path, output_limit=2000), _view("long.txt"))
    lines = record.output.splitlines()
    assert lines[0] == "     1\tline 1"
    shown = [line for line in lines if "\t" in line]
    last = int(shown[-1].split("\t")[0])
    assert shown[-1] == f"{last:6}\tline {last}"
    assert f"view_range [{last + 1}," in record.output
    assert len(record.output) <= 2000


async def test_str_replace_keeps_the_bytes_of_a_non_utf8_file(tmp_path: Path) -> None:
    """Editing a Latin-1 file changes only the replaced bytes; no U+FFFD is written."""
    (tmp_path / "l1.txt").write_bytes(b"caf\xe9 ok\n")
    (record,) = await _run(LocalBackend(workdir=tmp_path), _replace("l1.txt", "ok", "OK"))
    assert not record.is_error, record.output
    assert (tmp_path / "l1.txt").read_bytes() == b"caf\xe9 OK\n"
    assert "not valid UTF-8" in record.output


async def test_str_replace_refuses_a_match_inside_a_foreign_multibyte_character(
    tmp_path: Path,
) -> None:
    """In Shift-JIS text a match glued to undecodable bytes is refused; the file is unchanged."""
    data = "ソfoo".encode("shift_jis")  # 0x83 0x5c: the backslash byte ends a character
    assert data == b"\x83\\foo"
    (tmp_path / "sj.txt").write_bytes(data)
    (record,) = await _run(LocalBackend(workdir=tmp_path), _replace("sj.txt", "\\foo", "/foo"))
    assert record.is_error
    assert "not valid UTF-8" in record.output
    assert (tmp_path / "sj.txt").read_bytes() == data


async def test_edits_are_reported_with_their_new_size(tmp_path: Path) -> None:
    """create_file then str_replace: session.files shows the edited size and the editing call."""
    model = ScriptedModel(
        [
            tool_use_response(_create("grow.txt", "a")),
            tool_use_response(_replace("grow.txt", "a", "a" * 21)),
            text_response("k"),
        ]
    )
    async with Session(LocalBackend(workdir=tmp_path), model=model) as session:
        reply = await session.chat("go")
        files = session.files
    (grown,) = files
    assert grown.size_bytes == 21
    assert grown.tool_use_id == reply.tool_calls[1].call_id


async def test_files_made_by_commands_carry_the_call_id_and_size(tmp_path: Path) -> None:
    """A file a bash_tool command writes is reported with its size and the call's tool_use_id."""
    call = tool_call("bash_tool", {"command": "printf 12345 > made.txt", "description": "d"})
    model = ScriptedModel([tool_use_response(call), text_response("k")])
    async with Session(LocalBackend(workdir=tmp_path), model=model) as session:
        await session.chat("go")
        (made,) = session.files
    assert made.name == "made.txt"
    assert made.size_bytes == 5
    assert made.tool_use_id == call["id"]


async def test_file_tool_errors_are_results_not_exceptions(tmp_path: Path) -> None:
    """Unreadable files, lone surrogates and a file where a folder must be are error results."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    secret.chmod(0)
    (tmp_path / "plain").write_text("p")
    records = await _run(
        LocalBackend(workdir=tmp_path),
        _view("secret.txt"),
        _create("bad.txt", "\udce9"),
        _create("plain/child.txt", "x"),
        _replace("secret.txt", "s", "t"),
    )
    secret.chmod(0o600)
    if os.geteuid() == 0:  # root reads anything: only the other three are errors
        records = records[1:3]
    assert all(r.is_error for r in records), [r.output for r in records]
    assert not (tmp_path / "bad.txt").exists()


def _helper(request: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(request).encode()
    done = subprocess.run(
        [sys.executable, "-I", "-c", FILE_HELPER],
        input=b"%d\n" % len(body) + body,
        capture_output=True,
        timeout=30,
        check=True,
    )
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def test_docker_file_helper_runs_the_same_code(tmp_path: Path) -> None:
    """The in-container helper is the shared module: it refuses a FIFO and keeps Latin-1 bytes."""
    os.mkfifo(tmp_path / "f")
    (tmp_path / "l1.txt").write_bytes(b"caf\xe9 ok\n")
    base = {"workspace": str(tmp_path.resolve()), "readonly_roots": [], "limit": 30000}
    fifo = _helper({**base, "op": "view", "args": {"path": "f"}})
    assert fifo["ok"] is False
    assert "not a regular file" in fifo["output"]
    edit = _helper(
        {**base, "op": "str_replace", "args": {"path": "l1.txt", "old_str": "ok", "new_str": "OK"}}
    )
    assert edit["ok"] is True
    assert edit["file"] == {"path": str(tmp_path.resolve() / "l1.txt"), "size": 8}
    assert (tmp_path / "l1.txt").read_bytes() == b"caf\xe9 OK\n"


async def test_a_long_running_view_stops_at_the_tool_timeout(tmp_path: Path) -> None:
    """A view that must scan 64 GB for a line ends at tool_timeout, as a timed-out result."""
    with (tmp_path / "huge.txt").open("wb") as f:
        f.write(b"first\n" + b"x" * 10_000)  # text as far as the binary check looks
        f.truncate(64 * 1024**3)  # sparse: one endless line of zeros after line 1
    with anyio.fail_after(60):
        (record,) = await _run(
            LocalBackend(workdir=tmp_path), _view("huge.txt", view_range=[3, 4]), tool_timeout=1
        )
    assert record.is_error
    assert "timed out" in record.output
