"""The Files API (``/v1/files``): metadata, downloads, uploads and deletes."""

from __future__ import annotations

import builtins
import contextlib
import mimetypes
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2

from conjure_async._download import finish_download
from conjure_async._download import safe_filename as _safe_filename
from conjure_async._exceptions import APIConnectionError
from conjure_async.anthropic._api import AnthropicAPI, decode_json
from conjure_async.anthropic._models import Deleted, FileInfo, Page, parse_as

__all__ = ["FILES_BETA", "FilesClient", "safe_filename"]


def safe_filename(name: str, fallback: str = "file") -> str:
    r"""Turn a name the API (or a model) chose into a safe local file name.

    Directories are dropped, characters Windows or the API forbid
    (``<>:"|?*\\/`` and control characters) become ``_``, leading dots and
    spaces are removed (no ``..``, no hidden files), and the result is capped
    at 255 characters. An empty result becomes ``fallback``. Every backend's
    downloads name files this way.
    """
    return _safe_filename(name, fallback)


FILES_BETA = "files-api-2025-04-14"
"""The beta header of the Files API (still accepted after GA; keeps the beta shapes)."""


class FilesClient:
    """The Files API: the files code execution created, and files you upload.

    ::

        files = FilesClient(api)
        info = await files.metadata("file_011C...")
        path = await files.download(info.id, "downloads/")   # downloads/<safe name>

    Only files created by code execution or skills can be downloaded
    (``downloadable``); uploaded files can be used in requests but not read back.

    Args:
        api: The HTTP layer (shares its retries, timeouts and connection pool).
        beta: Send ``anthropic-beta: files-api-2025-04-14`` (the default).
            Either way both response shapes are understood.
    """

    def __init__(self, api: AnthropicAPI, *, beta: bool = True) -> None:
        self.api = api
        self.beta = beta

    @property
    def betas(self) -> builtins.list[str]:
        """The ``anthropic-beta`` values sent."""
        return [FILES_BETA] if self.beta else []

    async def _json(
        self, method: str, path: str, what: str, **options: Any
    ) -> tuple[Any, str | None]:
        response = await self.api.request(method, path, betas=self.betas, **options)
        return decode_json(self.api, response, what), response.headers.get("request-id")

    async def metadata(self, file_id: str) -> FileInfo:
        """The metadata of one file.

        Raises:
            NotFoundError: No such file in this workspace.
        """
        data, rid = await self._json("GET", f"/v1/files/{file_id}", "file metadata")
        return parse_as(FileInfo.from_wire, data, "file metadata", rid)

    async def list_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[FileInfo]:
        """One page of files; ``cursor`` is the previous page's ``next_page``.

        Beta lists page with ``after_id``/``has_more``, GA lists with
        ``page``/``next_page``; :attr:`Page.next_page` hides the difference.
        """
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["after_id" if self.beta else "page"] = cursor
        data, rid = await self._json("GET", "/v1/files", "list files", params=params)

        def build(raw: Any) -> Page[FileInfo]:
            items = [FileInfo.from_wire(item) for item in raw["data"]]
            if "has_more" in raw and "next_page" not in raw:
                last = raw.get("last_id") or (items[-1].id if items else None)
                after = last if raw["has_more"] and isinstance(last, str) else None
                return Page(data=items, next_page=after)
            cursor = raw.get("next_page")
            return Page(data=items, next_page=cursor if isinstance(cursor, str) else None)

        return parse_as(build, data, "list files", rid)

    async def list(self, *, limit: int | None = None) -> AsyncIterator[FileInfo]:
        """Every file, following the pages."""
        cursor: str | None = None
        while True:
            page = await self.list_page(limit=limit, cursor=cursor)
            for item in page.data:
                yield item
            if not page.next_page:
                return
            cursor = page.next_page

    async def read(self, file_id: str) -> bytes:
        """The content of a (downloadable) file, in memory."""
        response = await self.api.request(
            "GET",
            f"/v1/files/{file_id}/content",
            betas=self.betas,
            headers={"accept": "application/binary"},
        )
        return response.content

    async def download(
        self,
        file_id: str,
        directory: str | os.PathLike[str],
        *,
        filename: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Stream a file's content into ``directory`` and return the path written.

        The name is ``filename`` or the file's own name from its metadata,
        made safe with :func:`safe_filename` (never a path outside
        ``directory``). The content goes to a temporary file first and takes
        its final name only when complete, so a failed download leaves nothing
        behind.

        Raises:
            FileExistsError: The target exists and ``overwrite`` is false
                (checked before and after downloading).
            NotFoundError, BadRequestError: No such file, or it is not downloadable.
        """
        folder = Path(directory)
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        if filename is None:
            info = await self.metadata(file_id)
            filename = info.filename
        target = folder / safe_filename(filename, fallback=file_id)
        if not overwrite and await anyio.Path(target).exists():
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        partial = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            async with (
                self.api.stream(
                    "GET",
                    f"/v1/files/{file_id}/content",
                    betas=self.betas,
                    headers={"accept": "application/binary"},
                ) as response,
                await anyio.open_file(partial, "xb") as out,
            ):
                try:
                    async for chunk in response.aiter_bytes():
                        await out.write(chunk)
                except httpx2.TransportError as exc:
                    raise APIConnectionError(
                        f"the download of {file_id} broke off ({type(exc).__name__})",
                        request_id=response.headers.get("request-id"),
                    ) from exc
            await anyio.to_thread.run_sync(finish_download, partial, target, overwrite)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await anyio.Path(partial).unlink()
        return target

    async def upload(
        self,
        file: str | os.PathLike[str] | bytes,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> FileInfo:
        """Upload a file (a path, or bytes with ``filename``); return its metadata.

        Not retried after a connection reset, to avoid duplicates.
        """
        if isinstance(file, bytes):
            content = file
            name = filename or "upload.bin"
        else:
            path = Path(file)
            content = await anyio.Path(path).read_bytes()
            name = filename or path.name
        mime = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        data, rid = await self._json(
            "POST",
            "/v1/files",
            "upload file",
            files={"file": (name, content, mime)},
            idempotent=False,
        )
        return parse_as(FileInfo.from_wire, data, "upload file", rid)

    async def delete(self, file_id: str) -> Deleted:
        """Delete a file."""
        data, rid = await self._json("DELETE", f"/v1/files/{file_id}", "delete file")
        return parse_as(Deleted.from_wire, data, "delete file", rid)
