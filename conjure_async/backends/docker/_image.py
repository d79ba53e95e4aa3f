"""Sandbox images for the Docker backend: the default Dockerfile and an offline build.

* :func:`build_image` builds ``conjure_async/backends/docker/Dockerfile`` (sent alone)
  (``FROM python:3.12-slim`` plus bash and common document tools): the right
  default for hosts that reach Docker Hub and PyPI (``conjure docker build``).
* :func:`build_offline_image` needs no registry at all: it packs this host's
  ``bash``, a set of coreutils, ``python3`` with the shared libraries ``ldd``
  lists and the Python standard library into a root filesystem tarball and
  imports it (the engine's ``docker import`` endpoint). About 65 MB and a
  second or two; for tests and air-gapped hosts. Linux hosts only.

Both images run the backend's requirements: ``bash`` (commands), ``python3``
(the file tools' helper), ``/workspace`` writable by uid 65534, ``/tmp``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from conjure_async._exceptions import DockerError
from conjure_async.backends.docker._api import docker_client, translate

__all__ = [
    "DEFAULT_IMAGE",
    "DOCKERFILE",
    "OFFLINE_TOOLS",
    "build_image",
    "build_offline_image",
]

DEFAULT_IMAGE = "conjure-async-sandbox:latest"
"""The image :class:`DockerBackend` uses unless told otherwise."""

DOCKERFILE = Path(__file__).with_name("Dockerfile")
"""The default sandbox image's ``Dockerfile``: its build context is this one file."""

OFFLINE_TOOLS = (
    "bash", "cat", "ls", "echo", "head", "tail", "wc", "mkdir", "rmdir", "rm", "cp", "mv",
    "touch", "sleep", "env", "id", "sort", "uniq", "tr", "cut", "date", "dirname",
    "basename", "pwd", "chmod", "ln", "readlink", "realpath", "stat", "mktemp", "tee",
    "true", "false", "seq", "printf", "du", "df", "test", "timeout", "nproc", "md5sum",
    "sha256sum", "base64", "split", "paste", "comm", "diff", "grep", "sed", "find", "xargs",
    "ps", "kill", "setsid", "gzip", "tar", "awk", "mawk", "uname", "whoami", "hostname",
)  # fmt: skip
"""Programs copied into the offline image when this host has them (``bash`` is required)."""

_STDLIB_SKIP = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
     "dist-packages", "config-3.11-x86_64-linux-gnu", "pydoc_data"}
)  # fmt: skip
_PYTHON_PROBE = (
    "import sys, sysconfig; "
    "print(sysconfig.get_paths()['stdlib']); print('%d.%d' % sys.version_info[:2])"
)
_ENV = (
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "HOME=/workspace",
    "PYTHONDONTWRITEBYTECODE=1",
)
_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"  # noqa: S105 - the image's /etc/passwd, no secret
    "nobody:x:65534:65534:nobody:/workspace:/bin/bash\n"
)
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _ldd(paths: Iterable[str]) -> set[str]:
    """Shared libraries (and the loader) the ELF files in ``paths`` need."""
    found: set[str] = set()
    for path in paths:
        proc = subprocess.run(  # noqa: S603 - fixed program, our own arguments
            ["ldd", path],  # noqa: S607 - ldd from PATH, as the docs say
            capture_output=True,
            text=True,
            check=False,
        )
        for line in proc.stdout.splitlines():
            parts = line.split()
            for part in parts:
                if part.startswith("/") and Path(part).exists():
                    found.add(part)
    return found


def _rootfs_tar(
    python: str, tools: Sequence[str], extra_files: Mapping[str, str], workdir: str | None
) -> bytes:
    """Build the image's root filesystem as an uncompressed tar (runs in a worker thread)."""
    if sys.platform != "linux" or shutil.which("ldd") is None:
        raise DockerError("build_offline_image needs a Linux host with ldd")
    python_path = shutil.which(python)
    if python_path is None:
        raise DockerError(f"build_offline_image: {python!r} not found on this host")
    python_real = os.path.realpath(python_path)
    programs: dict[str, str] = {}
    for tool in tools:
        found = shutil.which(tool)
        if found:
            programs[tool] = os.path.realpath(found)
    if "bash" not in programs:
        raise DockerError("build_offline_image needs bash on this host")
    version = subprocess.run(  # noqa: S603 - the chosen interpreter, fixed code
        [python_real, "-c", _PYTHON_PROBE],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    stdlib, short = Path(version[0]), version[1]
    dynload = sorted(str(p) for p in (stdlib / "lib-dynload").glob("*.so"))
    libraries = _ldd([python_real, *programs.values(), *dynload])

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        added: set[str] = set()

        def directory(name: str, mode: int = 0o755, uid: int = 0) -> None:
            parts = Path(name).parts
            for depth in range(1, len(parts) + 1):
                sub = "/".join(parts[:depth])
                if sub in added:
                    continue
                info = tarfile.TarInfo(sub)
                info.type = tarfile.DIRTYPE
                info.mode = mode if depth == len(parts) else 0o755
                info.uid = info.gid = uid if depth == len(parts) else 0
                tar.addfile(info)
                added.add(sub)

        def regular(source: str, name: str, mode: int | None = None) -> None:
            name = name.lstrip("/")
            if name in added:
                return
            directory(str(Path(name).parent)) if "/" in name else None
            info = tar.gettarinfo(source, arcname=name)
            if info.issym() or info.islnk():
                info = tar.gettarinfo(os.path.realpath(source), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if mode is not None:
                info.mode = mode
            with Path(source).open("rb") as handle:
                tar.addfile(info, handle)
            added.add(name)

        def text(name: str, content: str, mode: int = 0o644) -> None:
            data = content.encode()
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            directory(str(Path(name.lstrip("/")).parent))
            tar.addfile(info, io.BytesIO(data))
            added.add(info.name)

        def symlink(name: str, target: str) -> None:
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            directory(str(Path(name.lstrip("/")).parent))
            tar.addfile(info)
            added.add(info.name)

        for name in ("usr/bin", "usr/lib", "usr/local/bin", "etc", "proc", "sys", "dev",
                     "root", "mnt/skills", "run", "var/tmp"):  # fmt: skip
            directory(name)
        directory("tmp", 0o1777)
        if workdir is not None:
            directory(workdir.strip("/"), 0o755, uid=65534)
        symlink("bin", "usr/bin")
        symlink("lib", "usr/lib")
        if Path("/lib64").exists():
            symlink("lib64", "usr/lib64")
        for tool, real in sorted(programs.items()):
            regular(real, f"usr/bin/{tool}")
        symlink("usr/bin/sh", "bash")
        regular(python_real, f"usr/bin/python{short}")
        symlink("usr/bin/python3", f"python{short}")
        symlink("usr/bin/python", f"python{short}")
        for library in sorted(libraries):
            target = library
            for prefix in ("/lib64/", "/lib/"):
                if library.startswith(prefix):
                    target = "/usr" + library
            regular(library, target)
        for root, dirs, files in os.walk(stdlib):
            rel_root = Path(root).relative_to(stdlib)
            if rel_root == Path():
                dirs[:] = [d for d in dirs if d not in _STDLIB_SKIP]
            dirs.sort()
            for file in sorted(files):
                source = Path(root) / file
                if source.is_file():
                    regular(str(source), f"usr/lib/python{short}/{rel_root / file}")
        text("etc/passwd", _PASSWD)
        text("etc/group", _GROUP)
        text("etc/hosts", "127.0.0.1 localhost\n")
        for name, content in extra_files.items():
            text(name, content)
    return buffer.getvalue()


async def build_offline_image(
    tag: str = DEFAULT_IMAGE,
    *,
    docker_host: str | None = None,
    python: str = "/usr/bin/python3",
    tools: Sequence[str] = OFFLINE_TOOLS,
    extra_files: Mapping[str, str] | None = None,
    if_missing: bool = False,
    workdir: str | None = "/workspace",
) -> str:
    """Build a sandbox image without any registry, from this host's programs.

    Packs ``bash``, the available ``tools``, ``python`` with its shared
    libraries (found with ``ldd``) and its standard library into a root
    filesystem tarball and imports it into the engine (``POST /images/create``
    with ``fromSrc=-``, like ``docker import``). The image has ``/workspace``
    owned by uid 65534 (its ``WORKDIR``), a ``/tmp`` with mode 1777,
    ``nobody`` in ``/etc/passwd``, and ``CMD ["sleep", "infinity"]``.

    Args:
        tag: The image name and tag to create (``name:tag``).
        docker_host: The engine (``None``: ``DOCKER_HOST`` or the local socket).
        python: The host interpreter to copy (a system Python, not a venv).
        tools: Programs to copy when the host has them (``bash`` is required).
        extra_files: More files to put in the image, ``{"etc/motd": "text"}``.
        if_missing: Return at once when ``tag`` already exists on the engine.
        workdir: The workspace directory to create (owned by uid 65534) and
            make the image's ``WORKDIR``; ``None`` for neither, like a stock
            image (``python:3.12-slim`` has no ``/workspace``).

    Returns:
        The image tag.

    Raises:
        DockerUnavailableError: the engine cannot be reached.
        DockerError: the host lacks what the image needs, or the import failed.
    """
    async with docker_client(docker_host) as client:
        if if_missing and await _image_exists(client, tag, docker_host):
            return tag
        data = await anyio.to_thread.run_sync(
            _rootfs_tar, python, tuple(tools), dict(extra_files or {}), workdir
        )
        repo, _, version = (
            tag.rpartition(":") if ":" in tag.rsplit("/", maxsplit=1)[-1] else (tag, "", "")
        )
        query: list[tuple[str, str]] = [
            ("fromSrc", "-"),
            ("repo", repo),
            ("tag", version or "latest"),
        ]
        changes = [f"ENV {item}" for item in _ENV]
        if workdir is not None:
            changes.append(f"WORKDIR {workdir}")
        changes.append('CMD ["sleep", "infinity"]')
        query += [("changes", change) for change in changes]
        from yarl import URL  # noqa: PLC0415 - comes with aiodocker

        try:
            async with client._query(
                URL("images/create").with_query(query),
                "POST",
                data=io.BytesIO(data),
                headers={"Content-Type": "application/x-tar"},
            ) as response:
                body = await response.read()
        except Exception as exc:
            raise translate(exc, host=docker_host, action=f"importing {tag}") from exc
        for line in body.decode("utf-8", "replace").splitlines():
            if line.strip().startswith("{") and "error" in json.loads(line):
                raise DockerError(f"importing {tag} failed: {json.loads(line)['error']}")
    return tag


async def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    context_dir: str | os.PathLike[str] | None = None,
    docker_host: str | None = None,
    build_args: Mapping[str, str] | None = None,
    pull: bool = False,
    on_log: Callable[[str], Any] | None = None,
) -> str:
    """Build the default sandbox image (or another build context) on the engine.

    Needs the base image (``python:3.12-slim``) reachable, i.e. an online
    engine; use :func:`build_offline_image` otherwise.

    Args:
        tag: The image name and tag to create.
        context_dir: A build context holding a ``Dockerfile`` (default: the
            packaged :data:`DOCKERFILE` alone).
        docker_host: The engine (``None``: ``DOCKER_HOST`` or the local socket).
        build_args: ``ARG`` values for the build.
        pull: Always pull a newer base image.
        on_log: Called with each line of build output (e.g. ``print``).

    Returns:
        The image tag.

    Raises:
        DockerUnavailableError: the engine cannot be reached.
        DockerError: the build failed (the message carries the engine's error).
    """
    context = Path(context_dir) if context_dir is not None else None
    if context is not None and not (context / "Dockerfile").is_file():
        raise DockerError(f"no Dockerfile in {context}")

    def pack() -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            if context is None:  # not the whole folder: it holds the backend's code
                tar.add(str(DOCKERFILE), arcname="Dockerfile")
            else:
                tar.add(str(context), arcname=".")
        return buffer.getvalue()

    data = await anyio.to_thread.run_sync(pack)
    async with docker_client(docker_host) as client:
        try:
            with tempfile.SpooledTemporaryFile() as fileobj:
                fileobj.write(data)
                fileobj.seek(0)
                stream = client.images.build(
                    fileobj=fileobj,
                    encoding="identity",
                    tag=tag,
                    buildargs=dict(build_args or {}),
                    pull=pull,
                    stream=True,
                )
                async for item in stream:
                    _check_build_item(tag, item)
                    line = str(item.get("stream", "")).rstrip("\n")
                    if line and on_log is not None:
                        on_log(line)
        except DockerError:
            raise
        except Exception as exc:
            raise translate(exc, host=docker_host, action=f"building {tag}") from exc
    return tag


async def _image_exists(client: Any, tag: str, docker_host: str | None) -> bool:
    aiodocker = __import__("aiodocker")
    try:
        await client.images.inspect(tag)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise translate(exc, host=docker_host, action=f"inspecting {tag}") from exc
    return True


def _check_build_item(tag: str, item: dict[str, Any]) -> None:
    if "error" in item:
        raise DockerError(f"building {tag} failed: {item['error']}")
