"""Containers that outlive their backend instance (``DockerBackend(keep_container=True)``).

A durable session's sandbox must survive the worker that created it: the
container's id, the engine's address and the image's own processes are kept
in the backend's state (:meth:`DockerBackend.dump_state`), and any backend
instance given that state reattaches by id instead of creating a container.
Such a container is labelled with its session (owner ``session:<id>``), not
with the process that created it, so :func:`sweep_orphans` never removes it
because a worker died; it is an orphan only when its session is over (the
``session_alive`` callback of the sweep says so).

A kept container also records each finished ``bash_tool`` call's result
under its idempotency key (in the backend's own tmpfs, ``/run/conjure/calls``,
never in the workspace): a durable session's retry of a call whose first
attempt finished returns the record instead of running the command again
(:func:`read_call`, :func:`write_call`).

If the container is gone when a backend reattaches (removed by hand, the
engine reset), the tool call fails with :class:`ContainerDiedError`: the
workspace's files are gone with it, and a silent fresh container would hide
that. The session can go on without that backend, or be closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from conjure_async._exceptions import ContainerDiedError
from conjure_async.backends._base import ToolEvent, ToolResult
from conjure_async.backends._records import parse_record, record_name, record_result
from conjure_async.backends.docker._api import import_aiodocker, translate
from conjure_async.backends.docker._config import ContainerConfig
from conjure_async.backends.docker._container import Sandbox, run_exec
from conjure_async.backends.docker._container import _prepare as prepare
from conjure_async.backends.docker._scripts import CONTROL_DIR

__all__ = ["SESSION_OWNER", "read_call", "reattach", "recorded", "session_of", "write_call"]

_CALLS = f"{CONTROL_DIR}/calls"
_CHUNK = 60_000
"""Characters of a record per exec argument (an argument may hold 128 KiB)."""

SESSION_OWNER: Final = "session:"
"""Owner label prefix of containers that belong to a session, not to a process."""


def session_of(owner: str) -> str | None:
    """The session id of a kept container's owner label (``None`` for a process owner)."""
    return owner[len(SESSION_OWNER) :] if owner.startswith(SESSION_OWNER) else None


async def reattach(
    client: Any, state: dict[str, Any], config: ContainerConfig, host: str | None
) -> Sandbox:
    """The kept container of ``state``, checked to be running.

    Raises:
        ContainerDiedError: The container is gone or stopped (its files with it).
        DockerError: The engine failed otherwise.
    """
    aiodocker = import_aiodocker()
    container_id = str(state["container_id"])
    try:
        info = await client.containers.container(container_id).show()
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            raise ContainerDiedError(
                f"the session's container {container_id[:12]} is gone (removed, or its engine "
                "was reset); its workspace is lost. Close the session or go on without it"
            ) from exc
        raise translate(exc, host=host, action="reattaching to the container") from exc
    running = bool((info.get("State") or {}).get("Running"))
    if not running:
        raise ContainerDiedError(
            f"the session's container {container_id[:12]} is not running "
            f"(status {(info.get('State') or {}).get('Status')!r}); its workspace cannot be used"
        )
    spare = state.get("spare")
    if not isinstance(spare, str) or not spare:  # a state without the image's processes
        return await prepare(client, container_id, config, None)  # kept: never with egress
    return Sandbox(container_id, spare)


async def read_call(client: Any, sandbox: Sandbox, key: str, host: str | None) -> ToolResult | None:
    """The recorded result of the call ``key`` in the container, if a finished attempt left one."""
    out, _, code = await run_exec(
        client,
        sandbox.id,
        ["cat", "--", f"{_CALLS}/{record_name(key)}"],
        host=host,
        action="reading a call record",
    )
    return parse_record(out.encode()) if code == 0 else None


async def write_call(
    client: Any, sandbox: Sandbox, key: str, result: ToolResult, host: str | None
) -> None:
    """Record ``result`` under ``key`` in the container (a temporary file, then a rename)."""
    text = record_result(result).decode()
    target = f"{_CALLS}/{record_name(key)}"
    partial = f"{target}.part"
    pieces = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        script = 'mkdir -p "$3" && printf %s "$1" >> "$2"' + (' && mv -f "$2" "$4"' if last else "")
        await run_exec(
            client,
            sandbox.id,
            ["sh", "-c", script, "conjure-record", piece, partial, _CALLS, target],
            host=host,
            action="recording a call",
        )


async def recorded(
    events: AsyncIterator[ToolEvent],
    key: str,
    client: Any,
    container: Callable[[], Awaitable[Sandbox]],
    host: str | None = None,
) -> AsyncIterator[ToolEvent]:
    """``events`` of a ``bash_tool`` call, or the recorded result of a finished attempt.

    The result is recorded before it is yielded: a worker that dies after
    the command finished leaves the record for the retry.
    """
    try:
        sandbox = await container()
        done = await read_call(client, sandbox, key, host)
        if done is not None:
            yield done
            return
        async for event in events:
            if isinstance(event, ToolResult):
                await write_call(client, sandbox, key, event, host)
            yield event
    finally:  # stopped early (a timeout, a cancellation): the command is stopped too
        await events.aclose()  # type: ignore[attr-defined]  # _bash is an async generator
