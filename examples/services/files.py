"""Serve the files a conversation's tools created, and nothing else."""

from __future__ import annotations

import mimetypes
import stat as stat_mode
from pathlib import Path
from typing import Any

import anyio

from conjure_async import Session
from conjure_async.backends import LocalBackend

__all__ = ["FileRefusedError", "read_created_file"]

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


class FileRefusedError(LookupError):
    """Not a file this conversation's tools created (or no longer one): HTTP 404."""


async def read_created_file(session: Session[Any], name: str) -> tuple[bytes, str]:
    """Return the content and media type of the created file called ``name``.

    Only names in ``session.files`` are served, never a path from the
    request, so ``../`` cannot escape. The recorded path must still resolve
    (symlinks followed) to a regular file inside a Local backend's working
    directory: a tool that later replaced the file with a symlink to
    ``/etc/passwd`` gets a refusal. Files of other backends (a container, the
    Files API) are not served by this example.

    Raises:
        FileRefusedError: No such created file, or it may not be served.
    """
    workdirs = [b.workdir for b in session.backends if isinstance(b, LocalBackend)]
    for created in reversed(session.files):
        if created.name != name or created.source != "local" or not created.path:
            continue
        path = Path(await anyio.Path(created.path).resolve())
        if not any(path.is_relative_to(root) for root in workdirs):
            break
        try:
            info = await anyio.Path(path).stat()
        except OSError:
            break
        if not stat_mode.S_ISREG(info.st_mode) or info.st_size > MAX_DOWNLOAD_BYTES:
            break
        data = await anyio.Path(path).read_bytes()
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return data, media_type
    raise FileRefusedError(name)
