"""The Local backend's folders (the ones it makes, what a command created) and its warning."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from conjure_async._logging import Logger
from conjure_async.backends._records import RECORDS_DIR

__all__ = ["make_dirs", "snapshot", "warn_unsandboxed"]

_warned_unsandboxed = False


def make_dirs(safe_id: str, *, with_workdir: bool) -> tuple[Path | None, Path]:
    """A new work dir (if wanted) and the private folder (``home``, ``tmp`` inside)."""
    private = Path(tempfile.mkdtemp(prefix=f"conjure-{safe_id}-private-")).resolve()
    (private / "home").mkdir()
    (private / "tmp").mkdir()
    workdir = (
        Path(tempfile.mkdtemp(prefix=f"conjure-{safe_id}-")).resolve() if with_workdir else None
    )
    return workdir, private


def snapshot(workdir: Path, limit: int) -> dict[Path, tuple[int, int]]:
    """``(size, mtime_ns)`` of the regular files under ``workdir`` (at most ``limit``)."""
    seen: dict[Path, tuple[int, int]] = {}
    stack = [workdir]
    while stack and len(seen) < limit:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != RECORDS_DIR:  # durable call records: not created files
                        stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    seen[Path(entry.path)] = (st.st_size, st.st_mtime_ns)
    return seen


def warn_unsandboxed(log: Logger) -> None:
    """Warn once per process that unsandboxed commands run with the user's rights."""
    global _warned_unsandboxed  # noqa: PLW0603 - a once-per-process warning
    if not _warned_unsandboxed:
        _warned_unsandboxed = True
        log.warning(
            "local.unsandboxed",
            detail="LocalBackend runs skill commands on the host with your user's rights; "
            "use sandbox='bwrap' or DockerBackend to confine them",
        )
