"""Serve the files a conversation's tools created, and nothing else."""

from __future__ import annotations

import functools
import mimetypes
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio

from conjure_async import ConjureError, Session

__all__ = ["FileRefusedError", "read_created_file"]

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


class FileRefusedError(LookupError):
    """Not a file this conversation's tools created (or no longer one): HTTP 404."""


async def read_created_file(session: Session[Any], name: str) -> tuple[bytes, str]:
    """Return the content and media type of the created file called ``name``.

    Only names in ``session.files`` are served, never a path from the
    request, so ``../`` cannot escape. The file is fetched with
    :meth:`Session.download <conjure_async.Session.download>`, whichever
    backend made it: copied from a Local work dir (which refuses a file a
    tool later replaced with a symlink out of it), out of a Docker container,
    or through the Files API for the hosted container.

    Raises:
        FileRefusedError: No such created file, or it may not be served.
    """
    for created in reversed(session.files):
        if created.name != name:
            continue
        folder = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp))
        try:
            try:
                path = await session.download(created, folder)
            except (ConjureError, OSError) as exc:
                raise FileRefusedError(name) from exc
            if (await anyio.Path(path).stat()).st_size > MAX_DOWNLOAD_BYTES:
                raise FileRefusedError(name)
            data = await anyio.Path(path).read_bytes()
        finally:
            remove = functools.partial(shutil.rmtree, folder, ignore_errors=True)
            await anyio.to_thread.run_sync(remove)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return data, media_type
    raise FileRefusedError(name)
