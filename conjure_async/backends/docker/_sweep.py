"""Removing sandbox containers that a crashed process left behind.

Every container the Docker backend or a warm pool creates carries the labels
``created-by=conjure_async``, ``conjure_async.session-id`` and
``conjure_async.owner=<hostname>:<pid>``. A container is an *orphan* when its
owner process no longer runs on this host; :func:`sweep_orphans` removes
those (and, when asked, containers of other hosts older than a given age).
Run it at application start-up or from a periodic job::

    removed = await sweep_orphans()                       # dead owners on this host
    removed = await sweep_orphans(other_hosts_older_than=3600)

Containers kept for a durable session (``DockerBackend(keep_container=True)``)
belong to the session, not to a process (owner ``session:<id>``): they are
orphans only when ``session_alive(session_id)`` answers ``False`` (for
Temporal sessions, ``conjure_async.temporal`` passes whether the session's
workflow still runs), and are never removed without that callback.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from conjure_async._logging import get_logger
from conjure_async.backends.docker._api import (
    CREATED_BY,
    LABEL_CREATED_BY,
    LABEL_OWNER,
    LABEL_SESSION,
    docker_client,
    translate,
)
from conjure_async.backends.docker._config import LABEL_EGRESS_FOLDER
from conjure_async.backends.docker._durable import session_of
from conjure_async.egress._runtime import remove_folder

__all__ = ["sweep_orphans"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_orphan(
    labels: dict[str, str], created: float, *, hostname: str, other_hosts_older_than: float | None
) -> bool:
    host, _, pid = labels.get(LABEL_OWNER, "").rpartition(":")
    if host == hostname and pid.isdigit():
        return not _alive(int(pid))
    if other_hosts_older_than is None:
        return False
    return time.time() - created >= other_hosts_older_than


async def sweep_orphans(
    docker_host: str | None = None,
    *,
    session_id: str | None = None,
    other_hosts_older_than: float | None = None,
    include_live: bool = False,
    session_alive: Callable[[str], Awaitable[bool]] | None = None,
) -> list[str]:
    """Remove conjure_async containers whose owning process is gone.

    Args:
        docker_host: The engine (``None``: ``DOCKER_HOST`` or the local socket).
        session_id: Only containers of this session.
        other_hosts_older_than: Also remove containers created on other hosts
            (or without an owner label) at least this many seconds ago.
        include_live: Remove matching containers even when their owner runs
            (e.g. ``session_id=...`` for a session you know is finished).
        session_alive: Whether a session still runs, for containers kept for
            a session (``keep_container``); without it they are never removed.

    Returns:
        The ids of the containers removed.

    Raises:
        DockerUnavailableError: the engine cannot be reached.
        DockerError: listing or removing failed.
    """
    log = get_logger(component="docker.sweep")
    labels = [f"{LABEL_CREATED_BY}={CREATED_BY}"]
    if session_id is not None:
        labels.append(f"{LABEL_SESSION}={session_id}")
    hostname = socket.gethostname()
    removed: list[str] = []
    async with docker_client(docker_host) as client:
        try:
            containers: list[Any] = await client.containers.list(
                all=True, filters={"label": labels}
            )
        except Exception as exc:
            raise translate(exc, host=docker_host, action="listing containers") from exc
        for container in containers:
            info: dict[str, Any] = container._container
            container_labels = dict(info.get("Labels") or {})
            created = float(info.get("Created") or 0)
            kept_for = session_of(container_labels.get(LABEL_OWNER, ""))
            if kept_for is not None and not include_live:
                if session_alive is None or await session_alive(kept_for):
                    continue
            elif not include_live and not _is_orphan(
                container_labels,
                created,
                hostname=hostname,
                other_hosts_older_than=other_hosts_older_than,
            ):
                continue
            try:
                await container.delete(force=True, v=True)
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    continue
                raise translate(exc, host=docker_host, action="removing an orphan") from exc
            removed.append(str(container.id))
            log.info("docker.orphan_removed", container=container.id, labels=container_labels)
            owner_host = container_labels.get(LABEL_OWNER, "").rpartition(":")[0]
            folder = container_labels.get(LABEL_EGRESS_FOLDER, "")
            if owner_host == hostname and folder.rsplit("/", 1)[-1].startswith("conjure-egress-"):
                remove_folder(folder)  # the egress folder a crashed process left on this host
    return removed
