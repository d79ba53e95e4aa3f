"""The demo's native skills: a log fetcher (httpx2) and a report writer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import httpx2

from conjure_async.backends import NativeSkill, ToolContext, ToolResult
from conjure_async.events import CreatedFile

PAGE = 100


@dataclasses.dataclass(frozen=True)
class FetchDeps:
    """What the log fetcher needs from the application (passed as ``Session(deps=...)``)."""

    http: httpx2.AsyncClient
    """A client whose ``base_url`` is the log API."""
    workdir: Path
    """Where fetched logs are saved (the local backend's working directory)."""


class LogAPIError(Exception):
    """The log API answered with an error status."""


class LogFetcher(NativeSkill):
    """Fetches service logs from the log REST API over HTTP."""

    name = "log-fetcher"
    description = (
        "Fetch application logs from the monitoring log API. Commands: 'services' lists "
        "the services; 'fetch SERVICE' saves the service's whole log as SERVICE.log in "
        "the working directory. read(SERVICE) shows a page of lines."
    )

    async def execute(self, command: str, ctx: ToolContext[FetchDeps]) -> str | ToolResult:
        """Run a log-fetcher command: 'services' or 'fetch SERVICE'."""
        words = command.split()
        if words == ["services"]:
            data = await self._get(ctx.deps.http, "/services")
            return ", ".join(data["services"])
        if len(words) == 2 and words[0] == "fetch":
            return await self._fetch(words[1], ctx)
        raise ValueError(f"unknown command {command!r}; use 'services' or 'fetch SERVICE'")

    async def read(
        self,
        path: str,
        ctx: ToolContext[FetchDeps],
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> str:
        """Show log lines of a service (path: the service name)."""
        params = {"offset": offset, "limit": min(limit or PAGE, PAGE)}
        data = await self._get(ctx.deps.http, f"/logs/{path}", params)
        return "\n".join(data["lines"]) or "(no lines)"

    async def _fetch(self, service: str, ctx: ToolContext[FetchDeps]) -> ToolResult:
        lines: list[str] = []
        while True:
            params = {"offset": len(lines), "limit": PAGE}
            data = await self._get(ctx.deps.http, f"/logs/{service}", params)
            lines.extend(data["lines"])
            if not data["lines"] or len(lines) >= data["total"]:
                break
        target = ctx.deps.workdir / f"{service}.log"
        text = "\n".join(lines) + "\n"
        await anyio.Path(target).write_text(text, encoding="utf-8")
        ctx.logger.info("log_fetcher.saved", service=service, lines=len(lines))
        created = CreatedFile(
            name=target.name,
            source="native",
            path=str(target),
            size_bytes=len(text.encode()),
            tool_use_id=ctx.call_id,
        )
        return ToolResult(output=f"saved {len(lines)} lines to {target.name}", files=(created,))

    @staticmethod
    async def _get(
        http: httpx2.AsyncClient, url: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await http.get(url, params=params)
        if response.is_error:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise LogAPIError(f"log API answered {response.status_code} for {url}: {reason}")
        data: dict[str, Any] = response.json()
        return data
