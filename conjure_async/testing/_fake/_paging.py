"""Pages of a listing, as the Skills and Files APIs cut them (``limit``, cursors)."""

from __future__ import annotations

import re
from typing import Any

from conjure_async.testing._fake._http import HTTPError

__all__ = ["cursor_page", "first", "limit_of"]


def first(query: dict[str, list[str]], name: str) -> str | None:
    """The first value of a query parameter, or ``None``."""
    values = query.get(name)
    return values[0] if values else None


def limit_of(query: dict[str, list[str]]) -> int:
    """The ``limit`` parameter (default 20; 400 unless an integer in 1-1000)."""
    raw = (query.get("limit") or ["20"])[0]
    try:
        value = int(raw)
    except ValueError as exc:
        raise HTTPError(400, f"limit: {raw!r} is not an integer") from exc
    if not 1 <= value <= 1000:
        raise HTTPError(400, "limit: must be between 1 and 1000")
    return value


def cursor_page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """A ``{"data", "has_more", "next_page"}`` page, from the ``page`` cursor on."""
    limit = limit_of(query)
    page = first(query, "page")
    start = 0
    if page is not None:
        match = re.fullmatch(r"page_(\d+)", page)
        if match is None:
            raise HTTPError(400, f"page: invalid cursor {page!r}")
        start = int(match.group(1))
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"data": chunk, "has_more": more, "next_page": f"page_{start + limit}" if more else None}
