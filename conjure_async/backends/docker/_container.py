"""One sandbox container's life: created, started, prepared, removed.

Shared by :class:`~conjure_async.backends.DockerBackend` and
:class:`~conjure_async.backends.WarmPool` (a pooled container is prepared
when the pool starts it, so taking it costs nothing more).

*Preparing* a container (:func:`create_container`, after it starts) runs
:data:`~conjure_async.backends.docker._scripts.PREPARE` once as the
container's user:

* the workspace must be writable by that user. An anonymous volume over a
  path the image lacks (``python:3.12-slim`` has no ``/workspace``) is
  root-owned ``755``, and so is a tmpfs workspace (the engine gives it the
  mode of the directory below, whatever ``mode=`` says); the backend then
  makes it ``0777`` from an exec as uid 0 (its root is root's, so no
  capability is needed; the container's capabilities stay dropped). A
  workspace that stays unwritable (a host directory, an image directory
  owned by another user) raises
  :class:`DockerError` naming the user and the path, and the container is
  removed;
* the backend's control directory (its own tmpfs) must be writable;
* the processes running at that moment (``docker-init``, the idle
  ``sleep``, whatever the image's entrypoint started) are recorded: command
  sweeps never kill them.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import anyio

from conjure_async._exceptions import DockerError
from conjure_async._logging import Logger
from conjure_async.backends.docker._api import (
    CREATED_BY,
    LABEL_CREATED_BY,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_SESSION,
    describe_host,
    import_aiodocker,
    translate,
)
from conjure_async.backends.docker._config import LABEL_EGRESS_FOLDER, ContainerConfig
from conjure_async.backends.docker._scripts import CONTROL_DIR, PREPARE
from conjure_async.egress._forwarder import PROXY_PORT
from conjure_async.egress._runtime import (
    MARKER,
    SANDBOX_FOLDER,
    make_folder,
    new_socket_name,
    remove_folder,
)

__all__ = ["Sandbox", "create_body", "create_container", "remove_container", "run_exec"]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_body(
    config: ContainerConfig,
    session_id: str,
    *,
    pool: bool,
    egress: tuple[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """The create request of ``config`` with the labels that let a sweep find the container.

    ``egress`` is ``(host folder, socket name)`` for a container with a policy.
    """
    body = config.create_request(*egress) if egress is not None else config.create_request()
    if egress is not None:
        body["Labels"][LABEL_EGRESS_FOLDER] = egress[0]
    body["Labels"] = {
        **body.get("Labels", {}),
        LABEL_CREATED_BY: CREATED_BY,
        LABEL_SESSION: session_id,
        LABEL_OWNER: owner or _owner(),
    }
    if pool:
        body["Labels"][LABEL_POOL] = config.key
    return body


@dataclass(frozen=True)
class Sandbox:
    """A started, prepared container."""

    id: str
    spare: str
    """Pids of the image's own processes (space-separated): never swept."""
    egress_folder: str | None = None
    """The host folder mounted at ``/run/egress`` (a container with an egress policy)."""
    egress_socket: str | None = None
    """The proxy socket's name in that folder (the session listens there)."""


async def run_exec(
    client: Any,
    container_id: str,
    cmd: list[str],
    *,
    user: str | None = None,
    host: str | None = None,
    action: str,
) -> tuple[str, str, int | None]:
    """Run a short exec to its end; return ``(stdout, stderr, exit code)``."""
    container = client.containers.container(container_id)
    options: dict[str, Any] = {"stdout": True, "stderr": True}
    if user is not None:
        options["user"] = user
    out, err = bytearray(), bytearray()
    try:
        execution = await container.exec(cmd, **options)
        async with execution.start(detach=False) as stream:
            while (message := await stream.read_out()) is not None:
                (err if message.stream == 2 else out).extend(message.data)
        code = (await execution.inspect()).get("ExitCode")
    except Exception as exc:
        raise translate(exc, host=host, action=action) from exc
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code


async def _prepare(
    client: Any, container_id: str, config: ContainerConfig, egress: tuple[str, str] | None
) -> Sandbox:
    """Check (and where ours, fix) the workspace; record the image's processes.

    With an egress policy, also check that the container sees the egress
    folder (an engine on another machine would mount an empty folder of its
    own) and wait until the forwarder listens.
    """
    host = config.docker_host
    marker = f"{SANDBOX_FOLDER}/{MARKER}" if egress is not None else ""
    cmd = [
        "bash", "-c", PREPARE, "conjure-prepare", config.workdir, CONTROL_DIR, marker,
        f":{PROXY_PORT:04X}",
    ]  # fmt: skip
    for attempt in (1, 2):
        out, err, code = await run_exec(
            client, container_id, cmd, host=host, action="preparing the container"
        )
        lines = out.splitlines()
        if code != 0 or len(lines) < 2:
            missing = " (no bash in the image?)" if code in (126, 127) else ""
            raise DockerError(
                f"preparing the container of image {config.image!r} failed{missing}: "
                f"exit code {code}: {(err or out).strip()[-500:]}"
            )
        workspace, control, network = [*lines[0].split(), "", ""][:3]
        if network == "unseen":
            raise DockerError(
                f"the Docker engine at {describe_host(host)} cannot see this machine's files: "
                f"the egress folder {egress[0] if egress else ''} is empty in the container, so "
                "the session's proxy socket cannot reach it. An egress policy needs the engine "
                "on this machine; for a remote engine see 'Remote engines' in the network "
                "policy documentation (a sidecar proxy container)"
            )
        if network == "noforwarder":
            raise DockerError(
                f"the egress forwarder did not start in the container of image {config.image!r} "
                "(it needs python3 in the image)"
            )
        if control != "ok":
            raise DockerError(
                f"the backend's control directory {CONTROL_DIR} (a tmpfs it mounts) is not "
                f"writable by the container user {config.user!r}: is another mount over it?"
            )
        if workspace == "ok":
            return Sandbox(
                container_id,
                lines[1],
                egress_folder=egress[0] if egress else None,
                egress_socket=egress[1] if egress else None,
            )
        if attempt == 1 and workspace == "denied" and config.own_workspace:
            # A new volume (or tmpfs) over a path the image lacks is root's, mode 755.
            await run_exec(
                client,
                container_id,
                ["chmod", "0777", "--", config.workdir],
                user="0:0",
                host=host,
                action="making the workspace writable",
            )
            continue
        detail = "; ".join(line for line in lines[2:] if line.strip())
        raise DockerError(
            f"the workspace {config.workdir} is not writable by the container user "
            f"{config.user!r} ({detail}); use an image or host directory where that user may "
            "write, another user=, or workspace='tmpfs'"
        )
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def create_container(
    client: Any,
    config: ContainerConfig,
    session_id: str,
    *,
    pool: bool = False,
    owner: str | None = None,
) -> Sandbox:
    """Create, start and prepare a container; remove it again if any step fails. Shielded.

    Raises:
        ImageNotFoundError: the image is gone.
        DockerError: the engine failed, or the container is unusable (the
            message says why: e.g. a workspace the user cannot write).
    """
    with anyio.CancelScope(shield=True):
        egress: tuple[str, str] | None = None
        if config.egress is not None:
            folder = await anyio.to_thread.run_sync(make_folder)
            egress = (str(folder), new_socket_name())
        try:
            body = create_body(config, session_id, pool=pool, egress=egress, owner=owner)
            container = await client.containers.create(body)
        except Exception as exc:
            remove_folder(egress[0] if egress else None)
            raise translate(
                exc, host=config.docker_host, image=config.image, action="creating the container"
            ) from exc
        try:
            try:
                await container.start()
            except Exception as exc:
                raise translate(
                    exc, host=config.docker_host, action="starting the container"
                ) from exc
            sandbox = await _prepare(client, str(container.id), config, egress)
        except BaseException:
            with contextlib.suppress(Exception):
                await container.delete(force=True, v=True)
            remove_folder(egress[0] if egress else None)
            raise
    return sandbox


async def remove_container(
    client: Any, container_id: str, log: Logger, *, egress_folder: str | None = None
) -> None:
    """Force-remove a container, its volumes and egress folder (shielded, never raises)."""
    aiodocker = import_aiodocker()
    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
        try:
            await client.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                log.warning("docker.remove_failed", container=container_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            log.warning("docker.remove_failed", container=container_id, error=repr(exc))
    remove_folder(egress_folder)
