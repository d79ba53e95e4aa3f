"""The Docker backend's container configuration: one frozen value, built from its options.

:class:`~conjure_async.backends.DockerBackend` takes its container options as
keyword arguments, as ``docker run`` does. :meth:`ContainerConfig.from_options`
checks and normalizes them once (sizes parsed, paths resolved, mappings and
sequences frozen into tuples) and :meth:`ContainerConfig.create_request` turns
the value into the engine's ``POST /containers/create`` body. Both are pure
(no engine, no I/O but resolving host paths), as httpx's ``Timeout`` and
``Limits`` are, so they are tested on their own.

Equal options give equal values with an equal :attr:`ContainerConfig.key`:
what a :class:`~conjure_async.backends.WarmPool` matches containers on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from conjure_async.backends.docker._image import DEFAULT_IMAGE
from conjure_async.backends.docker._scripts import CONTROL_DIR
from conjure_async.egress._policy import EgressPolicy
from conjure_async.egress._runtime import SANDBOX_FOLDER, forwarder_argv, sandbox_environment
from conjure_async.skills import Skill

__all__ = ["LABEL_EGRESS", "LABEL_EGRESS_FOLDER", "ContainerConfig", "parse_size"]

LABEL_EGRESS = "conjure_async.egress"
"""Label holding the egress policy's fingerprint on containers that have one."""
LABEL_EGRESS_FOLDER = "conjure_async.egress-folder"
"""Label holding the host folder mounted at ``/run/egress`` (removed with the container)."""
_FOLDER_PLACEHOLDER = "<egress-folder>"
_SOCKET_PLACEHOLDER = "<socket>"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DEFAULT_TMPFS = (("/tmp", "rw,nosuid,nodev,size=256m"),)  # noqa: S108 - the container's own tmpfs


def parse_size(value: int | str) -> int:
    """Bytes from an int or a Docker-style size (``"512m"``, ``"1g"``, ``"64MiB"``)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"not a size: {value!r} (use e.g. '512m' or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerConfig:
    """Everything a session's sandbox container is created with, normalized.

    Build it with :meth:`from_options` (what ``DockerBackend(...)`` does with
    its keyword options); each field is documented there, under its option.
    """

    docker_host: str | None
    image: str
    skills: tuple[tuple[str, str], ...]
    """``(name, host path)`` of each skill, mounted read-only at ``skills_dir/name``."""
    workspace: str
    """``"volume"``, ``"tmpfs"``, or the resolved host directory bind-mounted."""
    workdir: str
    skills_dir: str
    network: str
    memory: int | None
    """Bytes."""
    cpus: float | None
    pids_limit: int | None
    read_only: bool
    tmpfs: tuple[tuple[str, str], ...]
    user: str
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    init: bool
    env: tuple[tuple[str, str], ...]
    host_config: tuple[tuple[str, Any], ...]
    labels: tuple[tuple[str, str], ...]
    egress: EgressPolicy | None = None
    """The network policy: no network but the session's proxy (``None``: ``network`` alone)."""

    @classmethod
    def from_options(
        cls,
        skills: Iterable[Skill] = (),
        *,
        image: str = DEFAULT_IMAGE,
        docker_host: str | None = None,
        workspace: Literal["volume", "tmpfs"] | str | os.PathLike[str] = "volume",
        workdir: str = "/workspace",
        skills_dir: str = "/mnt/skills",
        network: str = "none",
        memory: int | str | None = "512m",
        cpus: float | None = 1.0,
        pids_limit: int | None = 256,
        read_only: bool = True,
        tmpfs: Mapping[str, str] | None = None,
        user: str = "65534:65534",
        cap_drop: Sequence[str] = ("ALL",),
        cap_add: Sequence[str] = (),
        no_new_privileges: bool = True,
        init: bool = True,
        env: Mapping[str, str] | None = None,
        host_config: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        egress: EgressPolicy | None = None,
    ) -> ContainerConfig:
        """Check and normalize the container options of :class:`DockerBackend`.

        The options and their defaults are the backend's (see its docstring).
        Trailing slashes leave ``workdir`` and ``skills_dir``, sizes become
        bytes, skill folders and a host-directory workspace become resolved
        paths, and ``tmpfs=None`` is the default ``/tmp`` mount.

        Raises:
            ValueError: ``memory`` is not a size, or ``egress`` comes with a
                network other than ``"none"``.
            TypeError: ``host_config`` holds a value JSON cannot carry.
        """
        if egress is not None and network != "none":
            raise ValueError(
                f"egress= needs network='none' (not {network!r}): the policy is the only way out"
            )
        if workspace not in ("volume", "tmpfs"):
            workspace = str(Path(workspace).resolve())
        return cls(
            docker_host=docker_host,
            image=image,
            skills=tuple((s.name, str(s.path.resolve())) for s in skills),
            workspace=str(workspace),
            workdir=workdir.rstrip("/") or "/",
            skills_dir=skills_dir.rstrip("/"),
            network=network,
            memory=parse_size(memory) if memory is not None else None,
            cpus=cpus,
            pids_limit=pids_limit,
            read_only=read_only,
            tmpfs=tuple(tmpfs.items()) if tmpfs is not None else _DEFAULT_TMPFS,
            user=user,
            cap_drop=tuple(cap_drop),
            cap_add=tuple(cap_add),
            no_new_privileges=no_new_privileges,
            init=init,
            env=tuple((env or {}).items()),
            host_config=tuple(json.loads(json.dumps(dict(host_config or {}))).items()),
            labels=tuple((labels or {}).items()),
            egress=egress,
        )

    @property
    def own_workspace(self) -> bool:
        """The workspace is a volume or tmpfs of ours (its root may be made writable)."""
        return self.workspace in ("volume", "tmpfs")

    @property
    def key(self) -> str:
        """A short hash of the engine and the create request (equal configs, equal keys).

        With an egress policy the key holds its fingerprint (hosts, ports and
        header names, never values), not the per-container folder.
        """
        canonical = json.dumps(self.create_request(), sort_keys=True)
        return hashlib.sha256(f"{self.docker_host}\n{canonical}".encode()).hexdigest()[:16]

    def create_request(
        self, egress_folder: str = _FOLDER_PLACEHOLDER, egress_socket: str = _SOCKET_PLACEHOLDER
    ) -> dict[str, Any]:
        """The engine's ``POST /containers/create`` body, without per-session labels.

        Args:
            egress_folder: The host folder to mount at ``/run/egress`` (with a policy).
            egress_socket: The proxy socket's name in that folder.
        """
        binds = [f"{path}:{self.skills_dir}/{name}:ro" for name, path in self.skills]
        volumes: dict[str, Any] = {}
        tmpfs = dict(self.tmpfs)
        if self.workspace == "volume":
            volumes[self.workdir] = {}
        elif self.workspace == "tmpfs":
            tmpfs[self.workdir] = "rw,nosuid,nodev,mode=1777"
        else:
            binds.append(f"{self.workspace}:{self.workdir}:rw")
        host: dict[str, Any] = {
            "NetworkMode": self.network,
            "ReadonlyRootfs": self.read_only,
            "Tmpfs": tmpfs,
            "CapDrop": list(self.cap_drop),
            "CapAdd": list(self.cap_add),
            "SecurityOpt": ["no-new-privileges"] if self.no_new_privileges else [],
            "Init": self.init,
            "Binds": binds,
        }
        if self.memory is not None:
            host["Memory"] = self.memory
            host["MemorySwap"] = self.memory  # no swap beyond the limit
        if self.cpus is not None:
            host["NanoCpus"] = int(self.cpus * 1e9)
        if self.pids_limit is not None:
            host["PidsLimit"] = self.pids_limit
        host.update(copy.deepcopy(dict(self.host_config)))  # a copy: the value stays as it is
        # The backend's own tmpfs for its marker files survives any host_config override.
        control = {"SizeBytes": 1024 * 1024, "Mode": 0o1777}
        host["Mounts"] = [
            *host.get("Mounts", ()),
            {"Type": "tmpfs", "Target": CONTROL_DIR, "TmpfsOptions": control},
        ]
        environment = {"HOME": self.workdir, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        command = ["sleep", "infinity"]
        labels = dict(self.labels)
        if self.egress is not None:
            binds.append(f"{egress_folder}:{SANDBOX_FOLDER}:ro")
            environment.update(sandbox_environment(self.egress, SANDBOX_FOLDER))
            # The forwarder is the container's main process: it lives as long as the container.
            command = forwarder_argv(f"{SANDBOX_FOLDER}/{egress_socket}")
            labels[LABEL_EGRESS] = self.egress.fingerprint
        environment.update(self.env)
        return {
            "Image": self.image,
            "Cmd": command,
            "User": self.user,
            "WorkingDir": self.workdir,
            "Env": [f"{k}={v}" for k, v in sorted(environment.items())],
            "Labels": labels,
            "Volumes": volumes,
            "NetworkDisabled": self.network == "none",
            "HostConfig": host,
        }
