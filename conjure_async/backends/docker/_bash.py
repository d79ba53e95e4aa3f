r"""``bash_tool`` in the Docker backend: one exec per command, a verified kill.

:func:`run_command` starts :data:`~._scripts.BASH_WRAPPER` through an
exec and writes the command to the exec's stdin (``<length>\n<bytes>``, so
no argument limit applies). It streams the output, splits the wrapper's
trailer off stdout (exit code, OOM-kill and pids-limit counters, processes
that could not be killed, changed files with sizes) and yields one
:class:`ToolResult`.

When the call ends early (the session's timeout, a cancellation) the
generator's ``finally`` runs :func:`stop_command`: a second exec
(:data:`~._scripts.KILLER`) kills every process of the call and
answers whether any is left, and the wrapper's exec must have ended. When
that cannot be confirmed the whole container is killed (so nothing keeps
running) and :class:`DockerError` says so: the session never reports a stop
that did not happen.
"""

from __future__ import annotations

import codecs
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

from conjure_async._exceptions import ContainerDiedError, DockerError
from conjure_async.backends._base import ToolChunk, ToolEvent, ToolResult
from conjure_async.backends._output import OutputCapture
from conjure_async.backends.docker._api import translate
from conjure_async.backends.docker._container import Sandbox
from conjure_async.backends.docker._scripts import (
    BASH_WRAPPER,
    CONTROL_DIR,
    KILLER,
    trailer_marker,
)
from conjure_async.events import CreatedFile

if TYPE_CHECKING:
    from conjure_async.backends.docker._backend import DockerBackend

__all__ = ["partial_marker", "run_command", "stop_command"]

KILL_WAIT = 10.0
"""Seconds a kill (the killer exec and the checks after it) may take."""


def partial_marker(data: bytes, marker: bytes) -> int:
    """Length of the longest end of ``data`` that begins ``marker`` (held back)."""
    start = data.find(marker[:1], max(len(data) - len(marker) + 1, 0))
    while start >= 0:
        if marker.startswith(data[start:]):
            return len(data) - start
        start = data.find(marker[:1], start + 1)
    return 0


async def run_command(
    backend: DockerBackend, sandbox: Sandbox, command: str, call_id: str
) -> AsyncIterator[ToolEvent]:
    """Run one ``bash_tool`` command in ``sandbox``; yield chunks, then its result."""
    data = command.encode("utf-8", "surrogatepass")
    token = uuid.uuid4().hex
    scan = backend.workdir if backend.track_files else ""
    execution = await backend._exec(
        sandbox,
        ["bash", "-c", BASH_WRAPPER, "conjure-bash", token, scan, CONTROL_DIR, sandbox.spare],
        stdin=True,
    )
    marker = trailer_marker(token)
    capture = OutputCapture(backend.output_limit)
    decoders = {
        1: codecs.getincrementaldecoder("utf-8")(errors="replace"),
        2: codecs.getincrementaldecoder("utf-8")(errors="replace"),
    }
    pending = b""
    trailer: bytearray | None = None
    finished = False
    try:
        stream = execution.start(detach=False)
        try:
            async with stream:
                await stream.write_in(b"%d\n" % len(data) + data)
                while (message := await stream.read_out()) is not None:
                    chunk: bytes = message.data
                    if message.stream == 2:
                        text = capture.add(decoders[2].decode(chunk))
                        if text:
                            yield ToolChunk(text, "stderr")
                        continue
                    if trailer is not None:
                        trailer += chunk
                        continue
                    pending += chunk
                    index = pending.find(marker)
                    if index >= 0:
                        trailer = bytearray(pending[index + len(marker) :])
                        chunk, pending = pending[:index], b""
                    else:
                        keep = partial_marker(pending, marker)
                        chunk, pending = (
                            pending[: len(pending) - keep],
                            pending[len(pending) - keep :],
                        )
                    text = capture.add(decoders[1].decode(chunk))
                    if text:
                        yield ToolChunk(text)
        except DockerError:
            raise
        except Exception as exc:
            raise translate(exc, host=backend.docker_host, action="running a command") from exc
        finished = True
    finally:
        if not finished:
            await stop_command(backend, sandbox, token, execution)
    capture.add(decoders[1].decode(pending, final=True) + decoders[2].decode(b"", final=True))
    if trailer is None:  # the wrapper itself was killed: sweep for it, ask the engine
        await stop_command(backend, sandbox, token, execution)
        code = (await execution.inspect()).get("ExitCode")
        if code is None:
            raise await backend._died(sandbox.id)
        yield _result(backend, capture.text(), int(code), (0, 0, 0), ())
        return
    head, _, rest = bytes(trailer).partition(b"\x00")
    fields = head.decode("ascii", "replace").split()
    code, oom, pids, left = (int(x) for x in [*fields, "0", "0", "0", "0"][:4])
    files = tuple(_changed_files(rest, backend.workdir, call_id))
    yield _result(backend, capture.text(), code, (oom, pids, left), files)


def _changed_files(raw: bytes, workdir: str, call_id: str) -> list[CreatedFile]:
    """The trailer's file list: ``<size|?> <path>`` entries, NUL-terminated."""
    files: list[CreatedFile] = []
    for entry in raw.split(b"\x00"):
        size, _, path_bytes = entry.partition(b" ")
        path = path_bytes.decode("utf-8", "replace")
        if not path.startswith(workdir.rstrip("/") + "/"):
            continue
        files.append(
            CreatedFile(
                name=path.rsplit("/", 1)[-1],
                source="docker",
                path=path,
                size_bytes=int(size) if size.isdigit() else None,
                tool_use_id=call_id,
            )
        )
    return files


def _result(
    backend: DockerBackend,
    output: str,
    code: int,
    counters: tuple[int, int, int],
    files: tuple[CreatedFile, ...],
) -> ToolResult:
    oom, pids, left = counters
    notes = []
    if oom > 0:
        memory = f" ({backend.memory // 1024**2} MiB)" if backend.memory else ""
        notes.append(f"[killed: the container ran out of memory{memory}]")
    if pids > 0:
        notes.append(f"[the container's process limit ({backend.pids_limit}) was reached]")
    if left > 0:
        notes.append(
            f"[{left} process(es) this command started could not be stopped and still run]"
        )
    if code != 0:
        notes.append(f"[exit code {code}]")
    output = "\n".join([output, *notes]) if output and notes else output or "\n".join(notes)
    return ToolResult(
        output=output or "(no output)", is_error=code != 0, exit_code=code, files=files
    )


async def stop_command(
    backend: DockerBackend, sandbox: Sandbox, token: str, execution: Any
) -> None:
    """Kill every process of a call and confirm it; else kill the container and raise.

    Shielded and bounded by :data:`KILL_WAIT`.

    Raises:
        DockerError: the call's processes could not be confirmed stopped; the
            container was killed so that nothing keeps running.
    """
    with anyio.CancelScope(shield=True):
        problem: str | None = f"the kill did not finish within {KILL_WAIT:g}s"
        with anyio.move_on_after(KILL_WAIT):
            try:
                problem = await _kill(backend, sandbox, token, execution)
            except ContainerDiedError:
                return  # the container is gone, and every process with it
            except DockerError as exc:
                problem = str(exc)
        if problem is None:
            return
        backend._log.warning("docker.kill_failed", container=sandbox.id, problem=problem)
        outcome = "the container was killed so that nothing keeps running"
        try:
            with anyio.move_on_after(KILL_WAIT):
                await backend._client.containers.container(sandbox.id).kill()
        except Exception as exc:  # noqa: BLE001 - reported in the error below
            outcome = f"killing the container failed too ({exc!r})"
        raise DockerError(
            f"bash_tool's command could not be stopped in container {sandbox.id[:12]} "
            f"({problem}); {outcome}"
        )


async def _kill(backend: DockerBackend, sandbox: Sandbox, token: str, execution: Any) -> str | None:
    """Run the killer; ``None`` when nothing of the call is left, else what is."""
    killer = await backend._exec(
        sandbox,
        ["bash", "-c", KILLER, "conjure-kill", token, CONTROL_DIR, sandbox.spare],
        stdin=True,  # kept open: the killer naps by reading it
    )
    out = bytearray()
    try:
        async with killer.start(detach=False) as stream:
            while (message := await stream.read_out()) is not None:
                out.extend(message.data[:4096])
        code = (await killer.inspect()).get("ExitCode")
    except Exception as exc:
        raise translate(exc, host=backend.docker_host, action="stopping a command") from exc
    if code == 1:
        lines = out.decode("utf-8", "replace").splitlines()
        named = [f"{pid} ({comm})" for pid, _, comm in (x.partition(" ") for x in lines[:10])]
        return f"process(es) still running after SIGKILL: {', '.join(named)}"
    if code != 0:
        return f"the kill exec failed with exit code {code}"
    # The killer saw none of the call's processes left, the wrapper included;
    # the engine records the exec's end a moment later.
    for _ in range(300):
        info = await execution.inspect()
        if not info.get("Running"):
            return None
        await anyio.sleep(0.01)
    return "its exec still runs"
