"""The async bodies of ``conjure chat``, ``conjure docker build`` and ``conjure mcp serve``.

They print for a person (events as lines, progress on a terminal) and let
every library error propagate: the command line (``_cli.main``) turns a
:class:`~conjure_async.ConjureError` into one line with a hint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from conjure_async._console import Progress, Write, format_event, stdout_write
from conjure_async._session import Session
from conjure_async.backends._base import Backend
from conjure_async.backends._local import LocalBackend
from conjure_async.skills import Skill, load_skills

__all__ = ["build_docker_image", "run_chat", "serve_mcp"]


async def run_chat(
    message: str,
    *,
    backend: str,
    skill_paths: Sequence[str],
    hosted_skills: Sequence[str],
    model_name: str,
    output_dir: str | os.PathLike[str] | None = None,
    write: Write | None = None,
    progress: Progress | None = None,
) -> int:
    """``conjure chat``: one message to Claude, its events streamed as lines.

    Args:
        message: What the user says.
        backend: ``local``, ``docker`` or ``anthropic``.
        skill_paths: Local skills (folders, ``.skill`` packages) to offer.
        hosted_skills: Anthropic's pre-built skills, ``name[@version]``
            (``anthropic`` backend).
        model_name: The Claude model.
        output_dir: Save every file the tools created here (none: list them only).
        write: Receives the output (default: standard output).
        progress: Shows the backend opening (skill uploads) and downloads on a
            terminal (default: off).

    Returns:
        The exit code, 0.

    Raises:
        ConjureError: Whatever failed (skills, the API, the backend).
    """
    out = write or stdout_write
    progress = progress or Progress(enabled=False)
    from conjure_async.models import AnthropicModel  # noqa: PLC0415 - only this command needs it

    skills = load_skills(*skill_paths) if skill_paths else []
    async with AsyncExitStack() as stack:
        model = await stack.enter_async_context(AnthropicModel(model=model_name))
        chosen: Backend
        if backend == "local":
            chosen = LocalBackend(skills)
        elif backend == "docker":
            from conjure_async.backends import DockerBackend  # noqa: PLC0415 - the [docker] extra

            chosen = DockerBackend(skills)
        else:
            from conjure_async.backends import (  # noqa: PLC0415 - only this backend needs them
                AnthropicBackend,
                AnthropicSkill,
            )

            prebuilt = []
            for item in hosted_skills:
                name, _, version = item.partition("@")
                prebuilt.append(AnthropicSkill(name, version=version or "latest"))
            chosen = AnthropicBackend([*prebuilt, *skills], api=model.api)
        uploading = " (uploading the skills)" if backend == "anthropic" and skills else ""
        with progress.status(f"opening the {backend} backend{uploading}"):
            session = await stack.enter_async_context(Session(chosen, model=model))
        async for event in session.stream(message):
            if event.kind == "text_delta":
                out(event.text)
            elif (line := format_event(event)) is not None:
                out(f"\n{line}\n")
        if output_dir is not None:
            await _save_files(session, Path(output_dir), out, progress)
    return 0


async def _save_files(session: Session[None], folder: Path, out: Write, progress: Progress) -> None:
    files = session.files
    for number, created in enumerate(files, 1):
        with progress.status(f"downloading {created.name} ({number} of {len(files)})"):
            try:
                path = await session.download(created, folder)
            except FileExistsError:
                out(f"  [file] {created.name} not saved: it exists in {folder}\n")
                continue
        out(f"  [file] saved {path}\n")


async def build_docker_image(
    tag: str,
    *,
    offline: bool,
    write: Write | None = None,
    progress: Progress | None = None,
) -> int:
    """``conjure docker build``: the sandbox image, from the Dockerfile or offline.

    Args:
        tag: The image to create.
        offline: Build from this host's programs (no registry) instead of the Dockerfile.
        write: Receives the build's log lines and ``built TAG`` (default: standard output).
        progress: Shows the build's current step on a terminal (default: off).

    Returns:
        The exit code, 0.

    Raises:
        DockerError: The engine is unreachable or the build failed.
    """
    out = write or stdout_write
    progress = progress or Progress(enabled=False)
    from conjure_async.backends import (  # noqa: PLC0415 - the [docker] extra, on first use
        build_image,
        build_offline_image,
    )

    if offline:
        with progress.status(f"building {tag} from this host's bash, python and tools"):
            await build_offline_image(tag)
    else:
        with progress.status(f"building {tag}") as update:

            def on_log(line: str) -> None:
                out(f"{line}\n")
                if line.startswith("Step "):
                    update(f"building {tag}: {line}")

            await build_image(tag, on_log=on_log)
    out(f"built {tag}\n")
    return 0


async def serve_mcp(
    skills: list[Skill],
    *,
    backend: str,
    transport: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    image: str | None = None,
) -> int:
    """Run ``conjure mcp serve`` until the client disconnects (stdio) or an interrupt (HTTP)."""
    from conjure_async.mcp import SkillsServer  # noqa: PLC0415 - needs the [mcp] extra

    choice: Any = backend
    if backend == "docker" and image:
        from conjure_async.backends import DockerBackend  # noqa: PLC0415 - needs [docker]

        def choice(chosen: list[Skill]) -> Backend:
            return DockerBackend(chosen, image=image)

    server = SkillsServer(skills, backend=choice)
    if transport == "stdio":
        await server.serve_stdio()
        return 0

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        sys.stderr.write(f"conjure: serving MCP on http://{shown}:{bound}/mcp\n")
        sys.stderr.flush()

    await server.serve_http(host, port, ready=ready)
    return 0
