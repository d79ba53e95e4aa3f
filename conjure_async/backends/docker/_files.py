"""Copying a file the Docker backend reported out of its container.

:func:`download` runs :data:`DOWNLOADER` (``python3``, which the file tools
need anyway) as the container's user. It opens the file without following a
final symlink and without blocking (a FIFO cannot hang it), then checks what
it opened: a regular file, whose real path (``/proc/self/fd``) lies inside
the workspace, no larger than the limit. Only then does it answer a JSON
header line and stream exactly that many bytes on stdout. Checking the open
descriptor rather than the path leaves no window for a symlink swap.

The engine's archive endpoint (``GET /containers/{id}/archive``) is not used:
engines before 25 read it from the host side, where a tmpfs workspace is
invisible (404), and it resolves symlinks against the container's root, not
the workspace.

On the host the bytes go to a temporary file beside the target, which takes
its name (a hard link, so an existing file is never replaced unless
``overwrite``) only when complete; a failed copy leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio

from conjure_async._download import finish_download, safe_filename
from conjure_async._exceptions import DockerError
from conjure_async.backends.docker._api import translate
from conjure_async.backends.docker._scripts import FILE_HELPER
from conjure_async.events import CreatedFile

if TYPE_CHECKING:
    from conjure_async.backends.docker._backend import DockerBackend
    from conjure_async.backends.docker._container import Sandbox

__all__ = ["DOWNLOADER", "download", "file_request"]

# argv: $1 path, $2 workspace, $3 byte limit. stdout: one JSON line, then
# exactly "size" bytes when ok.
DOWNLOADER: Final = r"""
import errno, json, os, stat, sys
def main():
    path, root, limit = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3])
    out = sys.stdout.buffer
    def answer(**fields):
        out.write(json.dumps(fields).encode() + b"\n")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        kinds = {errno.ENOENT: "missing", errno.ENOTDIR: "missing", errno.ELOOP: "link",
                 errno.EACCES: "denied", errno.EPERM: "denied"}
        return answer(ok=False, kind=kinds.get(exc.errno, "error"), error=exc.strerror)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return answer(ok=False, kind="type", error="")
    real = os.readlink("/proc/self/fd/%d" % fd)
    if not real.startswith(root + "/"):
        return answer(ok=False, kind="outside", error=real)
    if info.st_size > limit:
        return answer(ok=False, kind="size", error=str(info.st_size))
    answer(ok=True, size=info.st_size)
    left = info.st_size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)
    out.flush()
main()
"""

_REFUSED = {
    "link": "is a symbolic link",
    "type": "is not a regular file",
    "outside": "resolves outside the workspace",
}


async def download(
    exec_in_container: Callable[[list[str]], Awaitable[Any]],
    file: CreatedFile,
    directory: Path,
    *,
    workdir: str,
    limit: int,
    overwrite: bool,
    host: str | None,
) -> Path:
    """Copy ``file`` out of the container into ``directory``; return the path written.

    Args:
        exec_in_container: Creates an exec in the session's container.
        file: A file the backend reported (its ``path`` is a container path).
        directory: Where to write (exists).
        workdir: The workspace; nothing outside it is handed out.
        limit: The largest file copied, in bytes.
        overwrite: Replace an existing file of the same name.
        host: The engine, for error messages.

    Raises:
        FileNotFoundError: The file is gone or not readable.
        FileExistsError: The target exists and ``overwrite`` is false.
        DockerError: The path is outside the workspace, a link, not a regular
            file, larger than ``limit``, or it changed while being copied.
    """
    raw = file.path or ""
    path = posixpath.normpath(raw) if raw.startswith("/") else ""
    if not path.startswith(workdir.rstrip("/") + "/"):
        raise DockerError(
            f"cannot download {raw or file.name!r}: only files in the workspace {workdir} "
            "can be downloaded"
        )
    target = directory / safe_filename(file.name or posixpath.basename(path))
    if not overwrite and await anyio.Path(target).exists():
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    execution = await exec_in_container(["python3", "-c", DOWNLOADER, path, workdir, str(limit)])
    partial = directory / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    header: dict[str, Any] | None = None
    pending = bytearray()
    errors = bytearray()
    written = 0
    try:
        async with await anyio.open_file(partial, "xb") as out:
            try:
                async with execution.start(detach=False) as stream:
                    while (message := await stream.read_out()) is not None:
                        if message.stream == 2:
                            errors.extend(message.data[:4096])
                            continue
                        data = bytes(message.data)
                        if header is None:
                            pending.extend(data)
                            line, newline, data = bytes(pending).partition(b"\n")
                            if not newline:
                                continue
                            header = _header(line, errors)
                            if not header.get("ok"):
                                break
                        written += len(data)
                        await out.write(data)
            except Exception as exc:
                raise translate(exc, host=host, action=f"downloading {path}") from exc
        if header is None:
            detail = bytes(errors or pending).decode("utf-8", "replace").strip()[-500:]
            raise DockerError(f"downloading {path} failed: {detail or 'no answer'}")
        _refuse(header, path, limit)
        if written != int(header["size"]):  # the helper never sends more than it said
            raise DockerError(f"{path} changed while it was being downloaded")
        await anyio.to_thread.run_sync(finish_download, partial, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            await anyio.Path(partial).unlink()
    return target


def _header(line: bytes, errors: bytearray) -> dict[str, Any]:
    """The downloader's JSON answer (an error answer when it is not JSON)."""
    try:
        header = json.loads(line)
    except ValueError:
        detail = bytes(errors or line).decode("utf-8", "replace").strip()[-500:]
        return {"ok": False, "kind": "error", "error": detail}
    return dict(header) if isinstance(header, dict) else {"ok": False, "kind": "error"}


def _refuse(header: dict[str, Any], path: str, limit: int) -> None:
    """Raise what the downloader refused, if it did."""
    if header.get("ok"):
        return
    kind, error = header.get("kind"), header.get("error") or ""
    if kind in ("missing", "denied"):
        raise FileNotFoundError(f"{path} cannot be downloaded from the container: {error}")
    if kind == "size":
        raise DockerError(
            f"{path} is too large to download ({error} bytes; the limit is {limit}: "
            "DockerBackend(download_limit=...))"
        )
    reason = _REFUSED.get(str(kind), f"cannot be read ({error})")
    raise DockerError(f"{path} {reason}: refusing to download it")


async def file_request(
    backend: DockerBackend, sandbox: Sandbox, op: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run the file helper with one request; return its JSON reply."""
    request = json.dumps(
        {
            "op": op,
            "args": args,
            "workspace": backend.workdir,
            "readonly_roots": backend._readonly_roots,
            "limit": backend.output_limit,
        }
    ).encode()
    execution = await backend._exec(sandbox, ["python3", "-c", FILE_HELPER], stdin=True)
    out = bytearray()
    err = bytearray()
    try:
        async with execution.start(detach=False) as stream:
            await stream.write_in(b"%d\n" % len(request) + request)
            while (message := await stream.read_out()) is not None:
                (err if message.stream == 2 else out).extend(message.data)
        info = await execution.inspect()
    except DockerError:
        raise
    except Exception as exc:
        raise translate(exc, host=backend.docker_host, action=f"running {op}") from exc
    try:
        reply = json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        code = info.get("ExitCode")
        if code == 127:
            raise DockerError(
                f"the image {backend.image!r} has no python3, which the file tools need"
            ) from None
        if code is None:
            raise await backend._died(sandbox.id) from None
        detail = err.decode("utf-8", "replace")[-2000:]
        raise DockerError(f"the file helper failed (exit code {code}): {detail}") from None
    if not isinstance(reply, dict):
        raise DockerError("the file helper answered something unusable")
    return reply
