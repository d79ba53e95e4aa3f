"""The fake Files API: files in memory (uploaded, or "created in the container" by a test)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from conjure_async.testing._fake._http import (
    HTTPError,
    MultipartPart,
    RecordedRequest,
    Responder,
    now,
)
from conjure_async.testing._fake._paging import cursor_page, first, limit_of

__all__ = ["FILES_BETA", "FileStore"]

FILES_BETA = "files-api-2025-04-14"
"""With this beta header listings have the beta shape; without, the post-GA one."""


@dataclass(slots=True)
class _File:
    id: str
    filename: str
    mime_type: str
    content: bytes
    created_at: str
    downloadable: bool

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.content),
            "created_at": self.created_at,
            "downloadable": self.downloadable,
        }


class FileStore:
    """The stored files and what ``/v1/files...`` does to them.

    Args:
        ids: The server's counter, shared by every id it makes.
    """

    def __init__(self, ids: itertools.count[int]) -> None:
        self._ids = ids
        self._files: dict[str, _File] = {}

    def add(
        self,
        content: bytes,
        filename: str,
        *,
        mime_type: str = "application/octet-stream",
        downloadable: bool = True,
        file_id: str | None = None,
    ) -> str:
        """Store a file; return its id."""
        new_id = file_id or f"file_fake{next(self._ids):06d}"
        self._files[new_id] = _File(new_id, filename, mime_type, content, now(), downloadable)
        return new_id

    def content(self, file_id: str) -> bytes:
        """The bytes of a stored file (raises ``KeyError`` when unknown)."""
        return self._files[file_id].content

    @property
    def ids(self) -> list[str]:
        """The ids of the stored files."""
        return list(self._files)

    async def route(self, request: RecordedRequest, out: Responder) -> None:
        """Answer a request to ``/v1/files...`` (raises :class:`HTTPError` for a bad one)."""
        method, path = request.method, request.path.rstrip("/")
        if path == "/v1/files":
            if method == "POST":
                await out.json(self._upload(request.parts))
            else:
                await out.json(self._list(request.query, beta=FILES_BETA in request.betas))
            return
        match = re.fullmatch(r"/v1/files/([^/]+)(/content)?", path)
        if match is None:
            raise HTTPError(404, f"{method} {path}: no such endpoint in the fake server")
        stored = self._files.get(match.group(1))
        if stored is None:
            raise HTTPError(404, f"file {match.group(1)!r} not found")
        if match.group(2):
            if not stored.downloadable:
                raise HTTPError(400, f"file {stored.id} is not downloadable")
            await out.raw(200, stored.content, stored.mime_type)
        elif method == "DELETE":
            del self._files[stored.id]
            await out.json({"id": stored.id, "type": "file_deleted"})
        else:
            await out.json(stored.wire())

    def _upload(self, parts: list[MultipartPart]) -> dict[str, Any]:
        upload = next((p for p in parts if p.name == "file"), None)
        if upload is None:
            raise HTTPError(400, "file: Field required")
        file_id = self.add(
            upload.content,
            upload.filename or "upload",
            mime_type=upload.content_type or "application/octet-stream",
            downloadable=False,
        )
        return self._files[file_id].wire()

    def _list(self, query: dict[str, list[str]], *, beta: bool) -> dict[str, Any]:
        items = [f.wire() for f in self._files.values()]
        if not beta:
            return cursor_page(items, query)
        limit = limit_of(query)
        after = first(query, "after_id")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
