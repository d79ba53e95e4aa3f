"""The boundary to the Docker engine: client creation and error translation.

Everything that touches ``aiodocker`` goes through :func:`docker_client`
(which imports it lazily) and :func:`translate` (which turns its exceptions
into the library's tree)::

    aiodocker.DockerError status 900, aiohttp connection errors,
    OSError, a missing socket              -> DockerUnavailableError (host tried)
    404 "No such image"                    -> ImageNotFoundError (build hint)
    anything else                          -> DockerError

Where the engine is: ``docker_host=`` when given, else ``DOCKER_HOST``, else
the local socket (``/var/run/docker.sock``). ``tcp://`` hosts use TLS when
``DOCKER_TLS_VERIFY=1`` (certificates from ``DOCKER_CERT_PATH``: ``ca.pem``,
``cert.pem``, ``key.pem``), or with an explicit ``ssl.SSLContext``.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

from conjure_async._exceptions import (
    DockerError,
    DockerUnavailableError,
    ImageNotFoundError,
    MissingDependencyError,
)

__all__ = [
    "BUILD_HINT",
    "CREATED_BY",
    "LABEL_CREATED_BY",
    "LABEL_POOL",
    "LABEL_SESSION",
    "describe_host",
    "docker_client",
    "import_aiodocker",
    "translate",
]

LABEL_CREATED_BY = "created-by"
"""Label every container we create carries (value :data:`CREATED_BY`)."""
CREATED_BY = "conjure_async"
LABEL_SESSION = "conjure_async.session-id"
"""Label holding the owning session's id (``pool`` for idle warm-pool containers)."""
LABEL_POOL = "conjure_async.pool"
"""Label holding the warm pool's key (a hash of the container spec) on pooled containers."""
LABEL_OWNER = "conjure_async.owner"
"""Label holding ``hostname:pid`` of the process that created the container."""

BUILD_HINT = (
    "build it with `conjure docker build --tag IMAGE` (online; FROM python:slim), "
    "or without a registry with `conjure docker build --offline --tag IMAGE` "
    "(in Python: `await conjure_async.backends.build_offline_image(IMAGE)`)"
)
"""How to build a missing sandbox image; names only public commands and functions."""

_DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def import_aiodocker() -> ModuleType:
    """Import ``aiodocker`` or raise :class:`MissingDependencyError` with the pip hint."""
    try:
        import aiodocker  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError as exc:
        raise MissingDependencyError("aiodocker", "docker") from exc
    return aiodocker


def resolve_host(docker_host: str | None) -> str | None:
    """The engine address to use: explicit, ``DOCKER_HOST``, or a local socket found."""
    if docker_host:
        return docker_host if "://" in docker_host else f"unix://{docker_host}"
    env = os.environ.get("DOCKER_HOST")
    if env:
        return env
    for sock in _DEFAULT_SOCKETS:
        if Path(sock).exists():
            return f"unix://{sock}"
    return None


def describe_host(docker_host: str | None) -> str:
    """Say where we looked for the engine, for error messages."""
    resolved = resolve_host(docker_host)
    if resolved is None:
        return (
            "no engine address: docker_host is not set, DOCKER_HOST is not set, and "
            f"none of {', '.join(_DEFAULT_SOCKETS)} exists"
        )
    source = (
        "docker_host"
        if docker_host
        else "DOCKER_HOST"
        if os.environ.get("DOCKER_HOST")
        else ("the default socket")
    )
    return f"{resolved} (from {source})"


def translate(
    exc: BaseException, *, host: str | None, image: str | None = None, action: str = ""
) -> DockerError:
    """Return the library exception for an aiodocker/aiohttp/OS error (the caller chains it).

    Args:
        exc: The vendor exception.
        host: The ``docker_host`` option (``None``: environment or default socket).
        image: The image involved, for :class:`ImageNotFoundError`.
        action: What we were doing, e.g. ``"creating the container"``.
    """
    if isinstance(exc, DockerError):
        return exc
    aiodocker = import_aiodocker()
    doing = f" while {action}" if action else ""
    if isinstance(exc, aiodocker.DockerError):
        status = int(getattr(exc, "status", 0) or 0)
        message = str(getattr(exc, "message", exc))
        if status == 900:
            return DockerUnavailableError(
                f"cannot reach the Docker engine at {describe_host(host)}{doing}: {message}"
            )
        if status == 404 and image is not None and "image" in message.lower():
            return ImageNotFoundError(
                f"the sandbox image {image!r} is not on the engine at {describe_host(host)}; "
                f"{BUILD_HINT}"
            )
        return DockerError(f"the Docker engine answered {status}{doing}: {message}")
    if isinstance(exc, OSError) or _is_aiohttp_error(exc):
        return DockerUnavailableError(
            f"cannot reach the Docker engine at {describe_host(host)}{doing}: {exc!r}"
        )
    return DockerError(f"Docker engine failure{doing}: {exc!r}")


def _is_aiohttp_error(exc: BaseException) -> bool:
    try:
        import aiohttp  # noqa: PLC0415 - comes with aiodocker
    except ImportError:  # pragma: no cover - aiodocker depends on aiohttp
        return False
    return isinstance(exc, aiohttp.ClientError)


@contextlib.asynccontextmanager
async def docker_client(
    docker_host: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
) -> AsyncIterator[Any]:
    """Open an ``aiodocker.Docker`` client, ping the engine, close it on exit.

    Args:
        docker_host: ``unix:///path``, ``tcp://host:port`` (TLS per
            ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` or ``ssl_context``), or
            ``None`` for ``DOCKER_HOST`` / the default socket.
        ssl_context: TLS settings for a ``tcp://``/``https://`` engine.
        connect_timeout: Seconds to wait for a connection.

    Yields:
        The connected client (closed when the block exits).

    Raises:
        MissingDependencyError: ``aiodocker`` is not installed.
        DockerUnavailableError: the engine cannot be reached (the message names
            the socket or host tried).
    """
    aiodocker = import_aiodocker()
    import aiohttp  # noqa: PLC0415 - comes with aiodocker

    url = resolve_host(docker_host)
    if url is None:
        raise DockerUnavailableError(f"cannot reach the Docker engine: {describe_host(None)}")
    if ssl_context is not None and url.startswith("tcp://"):
        url = "https://" + url[len("tcp://") :]  # aiodocker would speak plain HTTP to it
    try:
        client = aiodocker.Docker(
            url=url,
            ssl_context=ssl_context,
            timeout=aiohttp.ClientTimeout(connect=connect_timeout, sock_connect=connect_timeout),
        )
    except (ValueError, OSError) as exc:
        raise DockerUnavailableError(
            f"cannot use the Docker engine at {describe_host(docker_host)}: {exc}"
        ) from exc
    try:
        try:
            await client.version()
        except Exception as exc:
            raise translate(exc, host=docker_host, action="connecting") from exc
        yield client
    finally:
        await client.close()
