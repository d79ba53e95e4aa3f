"""The fake Anthropic API server: its public face, its lifecycle, and the way in to a route."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self

import anyio

from conjure_async._closing import AsyncCloseable
from conjure_async._exceptions import MissingDependencyError
from conjure_async.testing._fake._accounting import PromptCache
from conjure_async.testing._fake._faults import STREAM_FAULTS, Fault, Faults, StreamFault, play
from conjure_async.testing._fake._files import FileStore
from conjure_async.testing._fake._http import (
    HTTPError,
    Receive,
    RecordedRequest,
    Responder,
    Send,
    credentials,
    read_request,
)
from conjure_async.testing._fake._messages import Messages, MessagesStep
from conjure_async.testing._fake._skills import SkillStore

__all__ = ["FakeAnthropicServer"]


class FakeAnthropicServer(AsyncCloseable):
    """A fake Anthropic API on a free port of 127.0.0.1 (an ASGI app under uvicorn).

    Use it as an async context manager; :attr:`base_url` is where to point
    ``AnthropicModel(base_url=...)``, the official SDK's ``base_url`` or the
    Skills/Files clients. Everything it serves is scripted or in memory.

    Args:
        responses: Initial Messages answers (see :meth:`queue`), or one
            function of the request body answering every Messages call.
        api_key: When set, requests presenting another key (``x-api-key`` or
            ``Authorization: Bearer``), or none, get 401 ``authentication_error``.
        text_chunk_size: Characters per ``text_delta`` when streaming.
        json_chunk_size: Characters per ``input_json_delta`` when streaming.
        accounting: Report each response's ``usage`` as the API computes it
            (input tokens at one per 4 bytes of each block's JSON; cache reads
            and writes from the request's breakpoints against the prefixes
            earlier requests wrote; output tokens from the answer's content;
            ``iterations`` with the compaction beta) instead of the scripted
            answer's own. Compaction, context edits and ``count_tokens``
            count tokens the same way either way.

    Attributes:
        requests: Every request received, in order.
    """

    _running: ClassVar[set[FakeAnthropicServer]] = set()

    def __init__(
        self,
        responses: Iterable[MessagesStep] | Callable[[dict[str, Any]], Any] = (),
        *,
        api_key: str | None = None,
        text_chunk_size: int = 8,
        json_chunk_size: int = 16,
        accounting: bool = False,
    ) -> None:
        self.api_key = api_key
        self.text_chunk_size = text_chunk_size
        self.json_chunk_size = json_chunk_size
        self.requests: list[RecordedRequest] = []
        self._closing = anyio.Event()
        ids = itertools.count(1)  # one counter for every id the server makes
        self._faults = Faults()
        self._skills = SkillStore(ids)
        self._files = FileStore(ids)
        self._clock_offset = 0.0
        self._cache = PromptCache(self._now)
        self._messages = Messages(
            responses,
            skills=self._skills,
            ids=ids,
            closing=self._closing,
            cache=self._cache,
            accounting=accounting,
        )
        self._server: Any = None
        self._sockets: list[socket.socket] = []
        self._port: int | None = None

    # -- public API -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, once the server runs."""
        if self._port is None:
            raise RuntimeError("the FakeAnthropicServer is not running; use 'async with'")
        return f"http://127.0.0.1:{self._port}"

    def queue(self, *steps: MessagesStep) -> None:
        """Add Messages answers, used in order by the next ``POST /v1/messages`` calls.

        Each is a :class:`MessagesResponse`, its dict, or a (sync or async)
        function of the request body returning one. Missing ``id`` and
        ``model`` are filled in. When the queue is empty a call gets a 500
        ``api_error`` with ``x-should-retry: false``.
        """
        self._messages.queue(*steps)

    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward: prompt-cache entries expire as if time passed."""
        self._clock_offset += seconds

    @property
    def cache_entries(self) -> int:
        """Prompt-cache entries alive now."""
        return len(self._cache)

    @property
    def accounting(self) -> bool:
        """Whether responses report usage as the API computes it (see the constructor)."""
        return self._messages.accounting

    @accounting.setter
    def accounting(self, value: bool) -> None:
        self._messages.accounting = value

    @property
    def remaining(self) -> int:
        """Messages answers still queued."""
        return self._messages.remaining

    def inject(
        self, fault: Fault, *, path: str = "/v1/messages", method: str | None = None, times: int = 1
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests whose path starts with ``path``.

        Faults apply in the order injected. :class:`StreamError` and
        the other stream faults (:class:`StreamDrop`, :class:`StreamRaw`,
        :class:`StreamPings`, :class:`PlainJSON`) wait for a streamed Messages request.
        """
        self._faults.add(fault, path=path, method=method, times=times)

    def add_file(
        self,
        content: bytes,
        filename: str,
        *,
        mime_type: str = "application/octet-stream",
        downloadable: bool = True,
        file_id: str | None = None,
    ) -> str:
        """Store a file as if code execution had created it; return its ``file_id``."""
        return self._files.add(
            content, filename, mime_type=mime_type, downloadable=downloadable, file_id=file_id
        )

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a stored file (raises ``KeyError`` when unknown)."""
        return self._files.content(file_id)

    @property
    def file_ids(self) -> list[str]:
        """The ids of the stored files."""
        return self._files.ids

    @property
    def skills_created(self) -> int:
        """How many skills were created through the Skills API."""
        return self._skills.created

    @property
    def custom_skill_ids(self) -> list[str]:
        """The ids of the custom skills stored."""
        return self._skills.custom_ids

    def skill_versions(self, skill_id: str) -> list[str]:
        """The versions of a stored skill, oldest first (raises ``KeyError`` when unknown)."""
        return self._skills.versions(skill_id)

    def skill_files(self, skill_id: str, version: str = "latest") -> dict[str, bytes]:
        """The files of an uploaded skill version, by the path they were sent with."""
        return self._skills.files(skill_id, version)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests, in order."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    @property
    def message_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the Messages requests, in order."""
        return [r.json for r in self.message_requests]

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The requests whose path starts with ``path`` (and of ``method``, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path) and (method is None or r.method == method.upper())
        ]

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start serving on a free port of 127.0.0.1.

        Raises:
            MissingDependencyError: ``uvicorn`` is not installed.
        """
        try:
            import uvicorn  # noqa: PLC0415 - optional test dependency
        except ImportError as exc:
            raise MissingDependencyError("uvicorn", "test") from exc
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        # (without it every answer waits ~40 ms for a delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        self._port = sock.getsockname()[1]
        self._sockets = [sock]
        config = uvicorn.Config(
            self._asgi,
            lifespan="off",
            ws="none",
            http="h11",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=self._sockets)
            await server.on_tick(0)
        except BaseException:
            sock.close()
            self._port = None
            raise
        self._server = server
        FakeAnthropicServer._running.add(self)
        return self

    @classmethod
    def running(cls) -> list[FakeAnthropicServer]:
        """The servers started and not yet closed (a leak check for test suites)."""
        return list(cls._running)

    async def aclose(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        self._closing.set()
        FakeAnthropicServer._running.discard(self)
        server, self._server = self._server, None
        if server is not None:
            with anyio.CancelScope(shield=True):
                await server.shutdown(sockets=self._sockets)
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    # -- serving -----------------------------------------------------------------------

    async def _asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI app: record the request, then answer it (faults first)."""
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        self.requests.append(request)
        out = Responder(send, receive, request_id=f"req_fake{len(self.requests):06d}")
        try:
            await self._serve(request, out)
        except HTTPError as error:
            await out.error(error.status, error.error_type, error.message)

    async def _serve(self, request: RecordedRequest, out: Responder) -> None:
        """Play the faults injected for ``request``, check it, and route it."""
        body = request.json if isinstance(request.json, dict) else None
        streaming = (
            request.path == "/v1/messages" and body is not None and body.get("stream") is True
        )
        stream_fault: StreamFault | None = None
        while (fault := self._faults.take(request, streaming=streaming)) is not None:
            if isinstance(fault, STREAM_FAULTS):
                stream_fault = fault
                break
            if await play(fault, out, self._closing):
                return
        if self.api_key is not None and self.api_key not in credentials(request.headers):
            raise HTTPError(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise HTTPError(400, "anthropic-version: header is required")
        method, path = request.method, request.path.rstrip("/")
        betas = request.betas
        if path == "/v1/messages" and method == "POST":
            await self._messages.answer(
                body,
                out,
                stream_fault,
                text_chunk_size=self.text_chunk_size,
                json_chunk_size=self.json_chunk_size,
                betas=betas,
            )
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await self._messages.count(body, out, betas)
        elif path == "/v1/skills" or path.startswith("/v1/skills/"):
            await self._skills.route(request, out)
        elif path == "/v1/files" or path.startswith("/v1/files/"):
            await self._files.route(request, out)
        else:
            raise HTTPError(404, f"{method} {path}: no such endpoint in the fake server")
