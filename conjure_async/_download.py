"""Safe names and atomic placement for the files every backend hands to the application.

Also :func:`session_download`, the body of ``Session.download`` (the session
assigns it as its method; the session module is near its size limit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from conjure_async._exceptions import SessionStateError

if TYPE_CHECKING:
    from conjure_async._session import Session
    from conjure_async.events import CreatedFile

__all__ = ["copy_confined", "finish_download", "safe_filename", "session_download"]

_FORBIDDEN = set('<>:"|?*\\/')
_MAX_NAME = 255


def safe_filename(name: str, fallback: str = "file") -> str:
    r"""Turn a name the API (or a model) chose into a safe local file name.

    Directories are dropped, characters Windows or the API forbid
    (``<>:"|?*\\/`` and control characters) become ``_``, leading dots and
    spaces are removed (no ``..``, no hidden files), and the result is capped
    at 255 characters. An empty result becomes ``fallback``.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join("_" if ch in _FORBIDDEN or ord(ch) < 32 else ch for ch in base)
    cleaned = cleaned.strip().lstrip(". ")
    if not cleaned:
        cleaned = safe_filename(fallback, "file") if fallback != name else "file"
    if len(cleaned) > _MAX_NAME:
        stem, dot, suffix = cleaned.rpartition(".")
        if dot and 0 < len(suffix) < 16:
            cleaned = f"{stem[: _MAX_NAME - len(suffix) - 1]}.{suffix}"
        else:
            cleaned = cleaned[:_MAX_NAME]
    return cleaned


def finish_download(partial: Path, target: Path, overwrite: bool) -> None:
    """Give the complete download its name (atomically refusing to overwrite)."""
    if overwrite:
        partial.replace(target)
        return
    try:
        os.link(partial, target)
    except FileExistsError:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists():
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
        partial.replace(target)


def copy_confined(root: Path, relpath: str, name: str, directory: Path, *, overwrite: bool) -> Path:
    """Copy the regular file ``root/relpath`` into ``directory`` (blocking; run in a thread).

    The source must resolve inside ``root`` and be a regular file, opened
    without following a final symlink and without blocking (a named pipe is
    refused, never read). The copy takes ``name`` made safe, is written under
    a temporary name and renamed when complete.

    Raises:
        FileNotFoundError: The file is gone, not regular, or outside ``root``.
        FileExistsError: The target exists and ``overwrite`` is false.
    """
    source = Path(os.path.realpath(root / relpath))
    if not source.is_relative_to(root):
        raise FileNotFoundError(f"{relpath} is not in the working directory")
    target = directory / safe_filename(name or source.name, fallback=source.name)
    if not overwrite and target.exists():
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    partial = directory / f".{target.name}.{os.urandom(4).hex()}.part"
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as src:  # noqa: PTH123 - Path.open cannot take an fd
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(f"{relpath} is not a regular file")
            with open(partial, "xb") as out:  # noqa: PTH123 - beside the fd open above
                shutil.copyfileobj(src, out, 1 << 20)
        finish_download(partial, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


async def session_download(
    self: Session[Any],
    file: CreatedFile,
    directory: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Fetch a file a tool reported (``reply.files``, ``session.files``) into ``directory``.

    The same call whatever ran the tool: a Local file is copied from the
    work dir, a Docker file out of the container, a hosted file through
    the Files API. Returns the local path (the file's name made safe).

    Raises:
        SessionStateError: No backend of this session reports files from
            ``file.source`` (or the session is not open).
        FileExistsError: The target exists and ``overwrite`` is false.
        FileNotFoundError: The file is gone.
        BackendError: The backend failed while copying.
    """
    self._ensure_open()
    for backend in self.backends:
        if backend.kind == file.source:
            folder = Path(directory)
            await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
            return await backend.download(file, folder, overwrite=overwrite)
    raise SessionStateError(
        f"no backend of this session serves files from {file.source!r} "
        f"(backends: {[b.kind for b in self.backends]})"
    )
