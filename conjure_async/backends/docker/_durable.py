"""Containers that outlive their backend instance (``DockerBackend(keep_container=True)``).

A durable session's sandbox must survive the worker that created it: the
container's id, the engine's address and the image's own processes are kept
in the backend's state (:meth:`DockerBackend.dump_state`), and any backend
instance given that state reattaches by id instead of creating a container.
Such a container is labelled with its session (owner ``session:<id>``), not
with the process that created it, so :func:`sweep_orphans` never removes it
because a worker died; it is an orphan only when its session is over (the
``session_alive`` callback of the sweep says so).

If the container is gone when a backend reattaches (removed by hand, the
engine reset), the tool call fails with :class:`ContainerDiedError`: the
workspace's files are gone with it, and a silent fresh container would hide
that. The session can go on without that backend, or be closed.
"""

from __future__ import annotations

from typing import Any, Final

from conjure_async._exceptions import ContainerDiedError
from conjure_async.backends.docker._api import import_aiodocker, translate
from conjure_async.backends.docker._container import Sandbox

__all__ = ["SESSION_OWNER", "reattach", "session_of"]

SESSION_OWNER: Final = "session:"
"""Owner label prefix of containers that belong to a session, not to a process."""


def session_of(owner: str) -> str | None:
    """The session id of a kept container's owner label (``None`` for a process owner)."""
    return owner[len(SESSION_OWNER) :] if owner.startswith(SESSION_OWNER) else None


async def reattach(client: Any, state: dict[str, Any], host: str | None) -> Sandbox:
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
    return Sandbox(container_id, str(state.get("spare", "")))
