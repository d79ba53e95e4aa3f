"""What a backend does with an egress policy: one proxy per session, folders it serves.

:class:`EgressRuntime` is the backends' one handle on the egress machinery:

* :meth:`EgressRuntime.start` runs the session's :class:`~._proxy.EgressProxy`
  in the session's task group (so it ends with the session, also on
  cancellation);
* :func:`make_folder` makes a host folder for one sandbox (mode 0711: the
  sandbox's user may enter it, nobody may list it) holding a marker file;
  :meth:`EgressRuntime.serve` puts the CA bundles in it and listens on an
  unguessable socket name there. The Docker backend bind-mounts the folder at
  :data:`SANDBOX_FOLDER`; bubblewrap binds it at its own path;
* :func:`with_decisions` wraps a ``run_tool`` generator so that the proxy's
  decisions go out as events, as span events of the tool call's span, while
  the command runs (with its output, at the latest when it ends).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from opentelemetry import trace

from conjure_async._logging import Logger
from conjure_async.backends._base import ToolChunk, ToolEvent, ToolResult
from conjure_async.egress._forwarder import FORWARDER, PROXY_PORT, proxy_environment
from conjure_async.egress._policy import EgressPolicy
from conjure_async.egress._proxy import EgressProxy
from conjure_async.events import EgressDecision

__all__ = [
    "BUNDLE",
    "EXTRA",
    "MARKER",
    "SANDBOX_FOLDER",
    "EgressRuntime",
    "forwarder_argv",
    "make_folder",
    "remove_folder",
    "with_decisions",
]

SANDBOX_FOLDER = "/run/egress"
"""Where a Docker sandbox sees its egress folder."""
BUNDLE = "ca-bundle.pem"
"""The full CA bundle (system CAs, ``upstream_ca``, the session CA)."""
EXTRA = "ca-extra.pem"
"""The extra CAs alone (for ``NODE_EXTRA_CA_CERTS``)."""
MARKER = "conjure-egress"
"""A file every egress folder holds from its start: proof that a sandbox sees the folder."""


def make_folder() -> Path:
    """A new egress folder (0711) with its marker file."""
    folder = Path(tempfile.mkdtemp(prefix="conjure-egress-")).resolve()
    folder.chmod(0o711)
    marker = folder / MARKER
    marker.write_text("conjure_async egress folder\n")
    marker.chmod(0o644)
    return folder


def remove_folder(folder: str | os.PathLike[str] | None) -> None:
    """Remove an egress folder (nothing if it is gone)."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def new_socket_name() -> str:
    """An unguessable socket file name (the folder cannot be listed)."""
    return f"proxy-{os.urandom(8).hex()}.sock"


def forwarder_argv(socket: str, python: str = "python3") -> list[str]:
    """The command that runs the forwarder to ``socket`` (add a program to wrap it)."""
    return [python, "-I", "-S", "-c", FORWARDER, socket, str(PROXY_PORT)]


def sandbox_environment(policy: EgressPolicy, folder: str) -> dict[str, str]:
    """The proxy and CA variables for a sandbox seeing its egress folder at ``folder``."""
    if not policy.needs_ca:
        return proxy_environment()
    return proxy_environment(bundle=f"{folder}/{BUNDLE}", extra=f"{folder}/{EXTRA}")


class EgressRuntime:
    """One session's egress proxy and the folders it serves.

    Args:
        policy: The session's policy.
        logger: The session's logger (decisions are logged through it).
    """

    def __init__(self, policy: EgressPolicy, *, logger: Logger) -> None:
        self.policy = policy
        self.proxy = EgressProxy(policy, logger=logger)
        self._bundles: tuple[bytes, bytes] | None = None

    async def start(self, task_group: TaskGroup) -> None:
        """Run the proxy in ``task_group`` (the session's) until :meth:`aclose` or its end."""
        if self.policy.needs_ca:
            self._bundles = await anyio.to_thread.run_sync(self.proxy.bundles)
        await task_group.start(self.proxy.run)

    async def serve(self, folder: Path, socket_name: str) -> Path:
        """Write the CA bundles into ``folder`` and listen on ``folder/socket_name``."""
        if self._bundles is not None:
            full, extra = self._bundles
            for name, data in ((BUNDLE, full), (EXTRA, extra)):
                path = anyio.Path(folder / name)
                await path.write_bytes(data)
                await path.chmod(0o644)
        socket = folder / socket_name
        await self.proxy.listen(socket)
        return socket

    def take(self, call_id: str) -> list[EgressDecision]:
        """The decisions since the last call, tagged with ``call_id`` and added to the span."""
        decisions = self.proxy.drain()
        if not decisions:
            return decisions
        span = trace.get_current_span()
        recording = span.is_recording()
        tagged = []
        for decision in decisions:
            tagged.append(decision.model_copy(update={"call_id": call_id or None}))
            if recording:
                attributes: dict[str, str | int | bool | list[str]] = {
                    "conjure.egress.host": decision.host,
                    "conjure.egress.port": decision.port,
                    "conjure.egress.method": decision.method,
                    "conjure.egress.allowed": decision.allowed,
                    "conjure.egress.intercepted": decision.intercepted,
                    "conjure.egress.headers": decision.headers,
                }
                if decision.reason:
                    attributes["conjure.egress.reason"] = decision.reason
                span.add_event("egress.decision", attributes)
        if recording:
            denied = sum(1 for d in decisions if not d.allowed)
            span.set_attribute("conjure.egress.decisions", len(decisions))
            span.set_attribute("conjure.egress.denied", denied)
        return tagged

    async def aclose(self) -> None:
        """Stop the proxy; its sockets are removed (folders are their owners' to remove)."""
        await self.proxy.aclose()


async def with_decisions(
    events: AsyncIterator[ToolEvent], runtime: EgressRuntime | None, call_id: str
) -> AsyncGenerator[ToolEvent, None]:
    """Yield ``events`` with the proxy's decisions in between (and before the result)."""
    try:
        async for event in events:
            if runtime is not None and isinstance(event, ToolResult):
                for decision in runtime.take(call_id):
                    yield decision
            yield event
            if runtime is not None and isinstance(event, ToolChunk):
                for decision in runtime.take(call_id):
                    yield decision
    finally:
        with contextlib.suppress(AttributeError):
            await events.aclose()  # type: ignore[attr-defined]  # run_tool is an async generator
