"""The Local backend: the four skill tools on the host.

``bash_tool`` runs ``bash -c COMMAND`` through
``asyncio.create_subprocess_exec`` in a per-session working directory, in a new
process group (session) of its own; a timeout or a cancellation kills the
whole group. The environment is an allowlist plus what the user passes, never
the parent's (so ``ANTHROPIC_API_KEY`` and friends stay out). The file tools
are confined to the skill folders (read-only) and the working directory, after
resolving symlinks. Output is capped, head and tail kept.

With ``sandbox="bwrap"`` commands run under bubblewrap: read-only root, a
writable working directory, a private ``/tmp``, no network, their own PID
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio

from conjure_async._exceptions import BackendError, SandboxUnavailableError
from conjure_async._logging import Logger, get_logger
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._output import OutputCapture
from conjure_async.events import CreatedFile
from conjure_async.messages import ToolDefinition
from conjure_async.skills import Skill, SkillListing, skill_tool_definitions

__all__ = ["LocalBackend"]

ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
"""Variables copied from the parent environment (nothing else is)."""

_warned_unsandboxed = False
_SCAN_LIMIT = 5000
_INLINE_SCAN = 200  # a working dir this small is scanned in well under a millisecond


def _warn_unsandboxed(log: Logger) -> None:
    global _warned_unsandboxed  # noqa: PLW0603 - a once-per-process warning
    if not _warned_unsandboxed:
        _warned_unsandboxed = True
        log.warning(
            "local.unsandboxed",
            detail="LocalBackend runs skill commands on the host with your user's rights; "
            "use sandbox='bwrap' or DockerBackend to confine them",
        )


def _make_tempdir(safe_id: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"conjure-{safe_id}-")).resolve()


class _RefusedError(Exception):
    """A file tool request outside what the backend allows (becomes an error result)."""


class LocalBackend(Backend):
    """Runs the skill tools on this machine.

    Args:
        skills: The skills to offer (``load_skills(...)`` output).
        workdir: Working directory for commands and written files (default: a
            new temporary directory, removed when the session closes).
        keep_workdir: Keep a temporary working directory after close.
        env: Extra environment variables for commands (added to the allowlist).
        output_limit: Characters of output kept per tool call (head and tail).
        sandbox: ``"none"`` (default) or ``"bwrap"`` (bubblewrap).
        only: Offer only these skill tools.
        exclude: Offer every skill tool but these.
        kill_grace: Seconds between SIGTERM and SIGKILL when stopping a command.
    """

    kind: ClassVar[str] = "local"

    def __init__(
        self,
        skills: Iterable[Skill] = (),
        *,
        workdir: str | os.PathLike[str] | None = None,
        keep_workdir: bool = False,
        env: Mapping[str, str] | None = None,
        output_limit: int = 30_000,
        sandbox: Literal["none", "bwrap"] = "none",
        only: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        kill_grace: float = 0.0,
    ) -> None:
        self.skills = list(skills)
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.keep_workdir = keep_workdir
        self.extra_env = dict(env or {})
        self.output_limit = output_limit
        if sandbox not in ("none", "bwrap"):
            raise ValueError(f"sandbox must be 'none' or 'bwrap', not {sandbox!r}")
        self.sandbox = sandbox
        self.kill_grace = kill_grace
        self._definitions = skill_tool_definitions(only=only, exclude=exclude)
        self._workdir: Path | None = None
        self._created_workdir = False
        self._roots = [s.path.resolve() for s in self.skills]
        self._log = get_logger(backend="local")
        self._processes: set[asyncio.subprocess.Process] = set()
        self._last_scan_size = 0

    def __repr__(self) -> str:
        return f"LocalBackend(skills={[s.name for s in self.skills]}, workdir={self._workdir})"

    # -- lifecycle -----------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The working directory (available once the session opened)."""
        if self._workdir is None:
            raise BackendError("LocalBackend is not open")
        return self._workdir

    async def open(self, ctx: BackendContext) -> None:
        """Create the working directory and check the sandbox."""
        self._log = ctx.logger
        if self._workdir is not None:
            raise BackendError("this LocalBackend is already in use by another session")
        if self.sandbox == "bwrap" and shutil.which("bwrap") is None:
            raise SandboxUnavailableError(
                "sandbox='bwrap' needs bubblewrap: apt-get install bubblewrap"
            )
        if self.sandbox == "none":
            _warn_unsandboxed(self._log)
        if self._given_workdir is not None:
            given = anyio.Path(self._given_workdir)
            await given.mkdir(parents=True, exist_ok=True)
            self._workdir = Path(await given.resolve())
        else:
            safe_id = "".join(c for c in ctx.session_id if c.isalnum())[:12]
            self._workdir = await anyio.to_thread.run_sync(_make_tempdir, safe_id)
            self._created_workdir = True

    async def aclose(self) -> None:
        """Kill leftover processes and remove a temporary working directory."""
        for proc in list(self._processes):
            await self._kill(proc)
        if self._workdir is not None and self._created_workdir and not self.keep_workdir:
            await anyio.to_thread.run_sync(
                lambda: shutil.rmtree(self._workdir, ignore_errors=True)  # type: ignore[arg-type]
            )
        self._workdir = None

    # -- what the model sees -------------------------------------------------

    def skill_listings(self) -> Sequence[SkillListing]:
        """Skills with their host paths."""
        return [
            SkillListing(s.name, s.description, str(s.path.resolve() / "SKILL.md"))
            for s in self.skills
        ]

    def tools(self) -> Sequence[ToolDefinition]:
        """The four skill tools (or the chosen subset)."""
        return self._definitions

    def prompt_notes(self) -> str | None:
        """Where commands run and where files may be written."""
        return (
            f"Your working directory is {self.workdir}. Commands run there; create files "
            "there. Skill folders are read-only."
        )

    # -- tools ---------------------------------------------------------------

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run one of the four skill tools."""
        del ctx
        if call.name == "bash_tool":
            async for event in self._bash(str(call.input.get("command", ""))):
                yield event
            return
        try:
            if call.name == "view":
                result = await anyio.to_thread.run_sync(self._view, call.input)
            elif call.name == "create_file":
                result = await anyio.to_thread.run_sync(self._create, call.input, call.id)
            elif call.name == "str_replace":
                result = await anyio.to_thread.run_sync(self._str_replace, call.input)
            else:
                result = ToolResult(output=f"LocalBackend has no tool {call.name!r}", is_error=True)
        except _RefusedError as exc:
            result = ToolResult(output=str(exc), is_error=True)
        yield result

    def _command_argv(self, command: str) -> list[str]:
        if self.sandbox == "none":
            return ["bash", "-c", command]
        workdir = str(self.workdir)
        argv = [
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
            "--bind",
            workdir,
            workdir,
        ]
        for root in self._roots:
            argv += ["--ro-bind", str(root), str(root)]
        argv += [
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--chdir", workdir,
            "bash", "-c", command,
        ]  # fmt: skip
        return argv

    def _environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env["HOME"] = str(self.workdir)
        env["TMPDIR"] = "/tmp" if self.sandbox == "bwrap" else str(self.workdir)  # noqa: S108
        env["PYTHONIOENCODING"] = "utf-8"
        env.update(self.extra_env)
        return env

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """Stop the process group of ``proc`` and reap it (shielded)."""
        if proc.returncode is not None:
            # bash has exited: stop what it left behind in its group, no wait needed
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self._processes.discard(proc)
            return
        with anyio.CancelScope(shield=True):
            if proc.returncode is None and self.kill_grace > 0:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with anyio.move_on_after(self.kill_grace):
                    await proc.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with anyio.move_on_after(10):
                await proc.wait()
            self._processes.discard(proc)

    async def _bash(self, command: str) -> AsyncIterator[ToolEvent]:
        if not command.strip():
            yield ToolResult(output="bash_tool needs a non-empty command", is_error=True)
            return
        before = await self._scan()
        try:
            # Shielded: a cancellation while asyncio sets the process up would
            # kill bash alone (not its group) and lose the pid, orphaning its
            # children. Start-up takes milliseconds; the cancellation is then
            # delivered at the first read below, where the group is killed.
            with anyio.CancelScope(shield=True):
                proc = await asyncio.create_subprocess_exec(
                    *self._command_argv(command),
                    cwd=self.workdir,
                    env=self._environment(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BackendError(f"cannot start bash: {exc}") from exc
        self._processes.add(proc)
        capture = OutputCapture(self.output_limit)
        try:
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                forwarded = capture.feed_bytes(chunk)
                if forwarded:
                    yield ToolChunk(forwarded)
            capture.feed_bytes(b"", final=True)
            code = await proc.wait()
        finally:
            await self._kill(proc)
        after = await self._scan()
        files = tuple(
            CreatedFile(name=p.name, source="local", path=str(p), size_bytes=size)
            for p, (size, _) in sorted(after.items())
            if before.get(p) != after[p]
        )
        output = capture.text()
        if code != 0:
            output = f"{output}\n[exit code {code}]" if output else f"[exit code {code}]"
        yield ToolResult(
            output=output or "(no output)",
            is_error=code != 0,
            exit_code=code,
            files=files,
        )

    async def _scan(self) -> dict[Path, tuple[int, int]]:
        """Snapshot the working directory (inline when small, else in a thread)."""
        if self._last_scan_size <= _INLINE_SCAN:
            seen = self._snapshot()
        else:
            seen = await anyio.to_thread.run_sync(self._snapshot)
        self._last_scan_size = len(seen)
        return seen

    def _snapshot(self) -> dict[Path, tuple[int, int]]:
        seen: dict[Path, tuple[int, int]] = {}
        stack = [self.workdir]
        while stack and len(seen) < _SCAN_LIMIT:
            with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        seen[Path(entry.path)] = (st.st_size, st.st_mtime_ns)
        return seen

    # -- file tools (run in a worker thread) ---------------------------------

    def _resolve(self, raw: Any, *, write: bool) -> Path:
        if not isinstance(raw, str) or not raw:
            raise _RefusedError("path must be a non-empty string")
        if "\x00" in raw:
            raise _RefusedError("path must not contain NUL bytes")
        path = Path(raw)
        if not path.is_absolute():
            path = self.workdir / path
        resolved = path.resolve()
        if resolved.is_relative_to(self.workdir):
            return resolved
        if any(resolved.is_relative_to(root) for root in self._roots):
            if write:
                raise _RefusedError(f"{raw} is inside a skill folder, which is read-only")
            return resolved
        raise _RefusedError(
            f"{raw} is outside the allowed folders (the working directory {self.workdir} "
            "and the skill folders)"
        )

    def _view(self, args: dict[str, Any]) -> ToolResult:
        path = self._resolve(args.get("path"), write=False)
        if not path.exists():
            raise _RefusedError(f"{args.get('path')} does not exist")
        capture = OutputCapture(self.output_limit)
        if path.is_dir():
            lines = [f"{path}/"]
            for child in sorted(path.iterdir()):
                lines.append(f"  {child.name}{'/' if child.is_dir() else ''}")
                if child.is_dir() and not child.is_symlink():
                    lines.extend(
                        f"    {g.name}{'/' if g.is_dir() else ''}" for g in sorted(child.iterdir())
                    )
            capture.add("\n".join(lines))
            return ToolResult(output=capture.text())
        data = path.read_bytes()
        if b"\x00" in data[:8192]:
            return ToolResult(output=f"{path} is a binary file ({len(data)} bytes)")
        all_lines = data.decode("utf-8", errors="replace").splitlines()
        start, end = 1, len(all_lines)
        view_range = args.get("view_range")
        if view_range is not None:
            start, end = int(view_range[0]), int(view_range[1])
            if end == -1:
                end = len(all_lines)
            if start < 1 or end < start or start > max(len(all_lines), 1):
                raise _RefusedError(
                    f"view_range {view_range} is invalid for a file of {len(all_lines)} lines"
                )
        for number in range(start, min(end, len(all_lines)) + 1):
            capture.add(f"{number:6}\t{all_lines[number - 1]}\n")
        return ToolResult(output=capture.text() or "(empty file)")

    def _create(self, args: dict[str, Any], call_id: str) -> ToolResult:
        path = self._resolve(args.get("path"), write=True)
        text = args.get("file_text")
        if not isinstance(text, str):
            raise _RefusedError("file_text must be a string")
        if path.is_dir():
            raise _RefusedError(f"{path} is a directory")
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created = CreatedFile(
            name=path.name,
            source="local",
            path=str(path),
            size_bytes=path.stat().st_size,
            tool_use_id=call_id,
        )
        verb = "Updated" if existed else "Created"
        return ToolResult(output=f"{verb} {path}", files=(created,))

    def _str_replace(self, args: dict[str, Any]) -> ToolResult:
        path = self._resolve(args.get("path"), write=True)
        old, new = args.get("old_str"), args.get("new_str", "")
        if not isinstance(old, str) or not old or not isinstance(new, str):
            raise _RefusedError("old_str must be a non-empty string and new_str a string")
        if not path.is_file():
            raise _RefusedError(f"{path} is not a file")
        text = path.read_text(encoding="utf-8", errors="replace")
        count = text.count(old)
        if count == 0:
            raise _RefusedError(f"old_str was not found in {path}")
        if count > 1:
            raise _RefusedError(
                f"old_str occurs {count} times in {path}; include more context to make it unique"
            )
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return ToolResult(output=f"Replaced 1 occurrence in {path}")
