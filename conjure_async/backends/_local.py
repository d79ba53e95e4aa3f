"""The Local backend: the four skill tools on the host.

``bash_tool`` runs each command through ``asyncio.create_subprocess_exec`` in a
per-session working directory and a new session of its own; the command text
goes in on stdin (any length), and a per-command cgroup, a child subreaper or
bubblewrap's PID namespace (:mod:`._localproc`) stops everything it started
at its end, timeout or cancellation. The environment is an allowlist plus
what the user passes, never the parent's (API keys stay out); ``HOME`` and
``TMPDIR`` are private, outside the working directory. The file tools
(:mod:`._filetools`, shared with Docker) are confined to the skill folders
(read-only) and the working directory after resolving symlinks, touch only
regular files and never block. Output is capped, head and tail kept.

``sandbox="bwrap"``: read-only root, writable working directory, private
``/tmp``, no network, own PID namespace; with ``egress=EgressPolicy(...)``
each command starts behind a forwarder (``127.0.0.1:3128`` in its own network
namespace) to the session's proxy socket (``docs/network-policy.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import anyio

from conjure_async._download import copy_confined
from conjure_async._exceptions import BackendError, SandboxUnavailableError
from conjure_async._logging import get_logger
from conjure_async.backends import _localproc
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._filetools import serve as serve_file_tool
from conjure_async.backends._localdirs import make_dirs, snapshot, warn_unsandboxed
from conjure_async.backends._localproc import (
    WRAPPER,
    CommandRefusedError,
    Containment,
    command_bytes,
)
from conjure_async.backends._output import OutputCapture
from conjure_async.backends._records import read_record, write_record
from conjure_async.egress import _runtime as net
from conjure_async.egress._policy import EgressPolicy
from conjure_async.events import CreatedFile
from conjure_async.messages import ToolDefinition
from conjure_async.skills import Skill, SkillListing, skill_tool_definitions
from conjure_async.skills._prompt import network_note

__all__ = ["LocalBackend"]

ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
"""Variables copied from the parent environment (nothing else is)."""

_SCAN_LIMIT = 5000
_INLINE_SCAN = 200  # a working dir this small is scanned in well under a millisecond
_STOP_WAIT = 10.0  # seconds to wait for a stopped command's top process to go
_FILE_TOOLS = ("view", "create_file", "str_replace")


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
        containment: Without a sandbox, how a command's processes are found
            and stopped: ``"auto"`` (default: a cgroup per command where this
            process may create one, else a child subreaper), ``"cgroup"``
            (required; the session fails to open without it) or
            ``"subreaper"``. See ``docs/security.md``.
        egress: A network policy for ``sandbox="bwrap"``: commands reach only
            its destinations, through the session's proxy (see
            :class:`EgressPolicy`). Keep injected secrets out of files this
            user can read: bubblewrap shows the host's files read-only.

    Raises:
        ValueError: an unknown ``sandbox`` or ``containment``, or ``egress``
            without ``sandbox="bwrap"``.
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
        containment: Literal["auto", "cgroup", "subreaper"] = "auto",
        egress: EgressPolicy | None = None,
    ) -> None:
        self.skills = list(skills)
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.keep_workdir = keep_workdir
        self.extra_env = dict(env or {})
        self.output_limit = output_limit
        if sandbox not in ("none", "bwrap"):
            raise ValueError(f"sandbox must be 'none' or 'bwrap', not {sandbox!r}")
        if containment not in ("auto", "cgroup", "subreaper"):
            raise ValueError(
                f"containment must be 'auto', 'cgroup' or 'subreaper', not {containment!r}"
            )
        if egress is not None and sandbox != "bwrap":
            raise ValueError("egress= needs sandbox='bwrap' (unsandboxed commands bypass it)")
        self.sandbox = sandbox
        self.egress = egress  # the network policy (with sandbox="bwrap"), if any
        self._egress: net.EgressRuntime | None = None
        self._egress_socket: Path | None = None
        self.kill_grace = kill_grace
        self._wanted_containment = containment
        self._definitions = skill_tool_definitions(only=only, exclude=exclude)
        self._workdir: Path | None = None
        self._private: Path | None = None
        self._created_workdir = False
        self._roots = [s.path.resolve() for s in self.skills]
        self._log = get_logger(backend="local")
        self._processes: set[asyncio.subprocess.Process] = set()
        self._cgroups: set[Path] = set()
        self._cgroup_session: Path | None = None
        self._cgroup_base: Path | None = None
        self._containment: Containment | None = None
        self._counter = itertools.count(1)
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

    @property
    def containment(self) -> Containment:
        """How commands are stopped: ``cgroup``, ``subreaper``, ``group`` or ``pidns`` (bwrap)."""
        if self._containment is None:
            raise BackendError("LocalBackend is not open")
        return self._containment

    async def open(self, ctx: BackendContext) -> None:
        """Create the working directory and the private folder; check the sandbox."""
        self._log = ctx.logger
        if self._workdir is not None:
            raise BackendError("this LocalBackend is already in use by another session")
        if self.sandbox == "bwrap" and shutil.which("bwrap") is None:
            raise SandboxUnavailableError(
                "sandbox='bwrap' needs bubblewrap: apt-get install bubblewrap"
            )
        if self.sandbox == "none":
            warn_unsandboxed(self._log)
        safe_id = "".join(c for c in ctx.session_id if c.isalnum())[:12]
        if self._given_workdir is not None:
            given = anyio.Path(self._given_workdir)
            await given.mkdir(parents=True, exist_ok=True)
            _, self._private = await anyio.to_thread.run_sync(
                functools.partial(make_dirs, safe_id, with_workdir=False)
            )
            self._workdir = Path(await given.resolve())
        else:
            made, self._private = await anyio.to_thread.run_sync(
                functools.partial(make_dirs, safe_id, with_workdir=True)
            )
            self._workdir = made
            self._created_workdir = True
        try:
            self._containment = await self._choose_containment(safe_id)
            if self.egress is not None:
                await self._start_egress(ctx, self.egress)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def _start_egress(self, ctx: BackendContext, policy: EgressPolicy) -> None:
        """Run the session's proxy; its socket and CA bundle go in the private folder."""
        folder = Path(str(self._private)) / "egress"
        await anyio.Path(folder).mkdir(mode=0o700)
        self._egress = net.EgressRuntime(policy, logger=ctx.logger)
        await self._egress.start(ctx.task_group)
        self._egress_socket = await self._egress.serve(folder, net.new_socket_name())

    async def _choose_containment(self, safe_id: str) -> Containment:
        if self.sandbox == "bwrap":
            return "pidns"
        if self._wanted_containment != "subreaper":
            base = _localproc.cgroup_base()
            if base is not None:
                session = base / f"conjure-{safe_id}-{os.urandom(4).hex()}"
                with contextlib.suppress(OSError):
                    session.mkdir()
                    self._cgroup_base, self._cgroup_session = base, session
                    if (session / "cgroup.kill").exists() and await self._cgroup_works():
                        return "cgroup"
                    self._cgroup_base = self._cgroup_session = None
                    _localproc.remove_cgroup(session)
            if self._wanted_containment == "cgroup":
                raise SandboxUnavailableError(
                    "containment='cgroup' needs a writable cgroup v2 hierarchy with "
                    "cgroup.kill (Linux 5.14+, as root or in a delegated subtree)"
                )
        return "subreaper" if sys.platform.startswith("linux") else "group"

    async def _cgroup_works(self) -> bool:
        """Run an empty command in a cgroup of its own: can commands enter cgroups here?"""
        self._containment = "cgroup"
        try:
            result: ToolResult | None = None
            async for event in self._bash(":", ""):
                if isinstance(event, ToolResult):
                    result = event
            return result is not None and result.exit_code == 0
        finally:
            self._containment = None

    async def aclose(self) -> None:
        """Stop leftover commands and the proxy; remove the private folder and a temp work dir."""
        for proc in list(self._processes):
            await self._stop(proc, None)
        if self._egress is not None:
            await self._egress.aclose()
            self._egress = self._egress_socket = None
        for group in list(self._cgroups):
            await self._remove_cgroup(group)
        if self._cgroup_session is not None:
            await self._remove_cgroup(self._cgroup_session)
            self._cgroup_session = None
        doomed = [self._private]
        if self._workdir is not None and self._created_workdir and not self.keep_workdir:
            doomed.append(self._workdir)
        for folder in doomed:
            if folder is not None:
                await anyio.to_thread.run_sync(
                    functools.partial(shutil.rmtree, folder, ignore_errors=True)
                )
        self._workdir = self._private = None
        self._containment = None

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
        """Where commands run and what is enforced (only what is)."""
        notes = (
            f"Your working directory is {self.workdir}. Commands run there; create files "
            "there. Background processes are stopped when their command ends."
        )
        if self.sandbox == "bwrap":
            network = (
                f"there is no direct network. {network_note(self.egress.destinations())}"
                if self.egress is not None
                else "there is no network."
            )
            return (
                f"{notes} Commands run in a sandbox: everything outside the working "
                f"directory, skill folders included, is read-only; /tmp is private to each "
                f"command; {network}"
            )
        return (
            f"{notes} The file tools cannot write in skill folders. Commands are not "
            "sandboxed: they run with the application's rights, so do not use them to "
            "change skill folders either."
        )

    # -- tools ---------------------------------------------------------------

    async def run_tool(self, call: ToolCall, ctx: ToolContext[Any]) -> AsyncIterator[ToolEvent]:
        """Run one of the four skill tools."""
        if call.name == "bash_tool":
            key = ctx.idempotency_key  # a retried durable call: the first attempt's result
            if key is not None and (done := read_record(self.workdir, key)) is not None:
                yield done
                return
            events = self._bash(str(call.input.get("command", "")), ctx.call_id)
            if self._egress is not None:
                events = net.with_decisions(events, self._egress, ctx.call_id)
            async for event in events:
                if key is not None and isinstance(event, ToolResult):
                    write_record(self.workdir, key, event)
                yield event
            return
        if call.name not in _FILE_TOOLS:
            yield ToolResult(output=f"LocalBackend has no tool {call.name!r}", is_error=True)
            return
        request = {
            "op": call.name,
            "args": call.input,
            "workspace": str(self.workdir),
            "readonly_roots": [str(r) for r in self._roots],
            "limit": self.output_limit,
        }
        # The file tools never block (regular files only, non-blocking opens)
        # and check ``stopped`` between chunks; abandoning the thread on
        # cancellation is only a second line of defence.
        stopped = threading.Event()
        try:
            reply = await anyio.to_thread.run_sync(
                serve_file_tool, request, stopped.is_set, abandon_on_cancel=True
            )
        finally:
            stopped.set()
        if not reply.get("ok"):
            yield ToolResult(output=str(reply.get("output", "failed")), is_error=True)
            return
        files: tuple[CreatedFile, ...] = ()
        if isinstance(written := reply.get("file"), dict):
            path = Path(written["path"])
            files = (
                CreatedFile(
                    name=path.name,
                    source="local",
                    path=str(path),
                    size_bytes=int(written["size"]),
                    tool_use_id=call.id,
                ),
            )
        yield ToolResult(output=str(reply["output"]), files=files)

    def _command_argv(self, cgroup: Path | None, env: Mapping[str, str]) -> list[str]:
        wrapper = ["bash", "-c", WRAPPER, "bash"]
        if cgroup is not None:
            return [*wrapper, str(cgroup), str(self._cgroup_base)]
        if self.containment in ("subreaper", "group"):
            return [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _localproc.SHIM,
                str(self.kill_grace),
                *wrapper,
            ]
        extra: list[Path] = []
        if self._egress_socket is not None:  # the forwarder binds, then runs the command
            wrapper = [
                *net.forwarder_argv(str(self._egress_socket), sys.executable),
                *wrapper,
            ]
            extra.append(self._egress_socket.parent)
        return _localproc.bwrap_argv(
            workdir=self.workdir,
            home=self._home,
            roots=self._roots,
            path_variable=env.get("PATH", ""),
            command=wrapper,
            readonly=extra,
        )

    @property
    def _home(self) -> Path:
        if self._private is None:
            raise BackendError("LocalBackend is not open")
        return self._private / "home"

    def _environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env["HOME"] = str(self._home)
        if self.sandbox == "bwrap":
            env["TMPDIR"] = "/tmp"  # noqa: S108 - the sandbox's own tmpfs
        else:
            env["TMPDIR"] = str(self._home.parent / "tmp")
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in skill folders
        env["PIP_USER"] = "1"  # pip installs into $HOME/.local, never the app's environment
        if self.egress is not None and self._egress_socket is not None:
            env.update(net.sandbox_environment(self.egress, str(self._egress_socket.parent)))
        env.update(self.extra_env)
        return env

    # -- bash_tool -----------------------------------------------------------

    async def _bash(self, command: str, call_id: str) -> AsyncIterator[ToolEvent]:
        try:
            data = command_bytes(command)
        except CommandRefusedError as exc:
            yield ToolResult(output=str(exc), is_error=True)
            return
        before = await self._scan()
        cgroup: Path | None = None
        try:
            # Shielded: a cancellation while asyncio sets the process up would
            # kill the process alone and lose its pid. Start-up takes
            # milliseconds; the cancellation is then delivered at the first
            # read below, where the command is stopped.
            with anyio.CancelScope(shield=True):
                if self.containment == "cgroup":
                    cgroup = self._new_cgroup()
                env = self._environment()
                with self._script(data) as script:
                    proc = await asyncio.create_subprocess_exec(
                        *self._command_argv(cgroup, env),
                        cwd=self.workdir,
                        env=env,
                        stdin=script,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                    )
        except (OSError, ValueError) as exc:
            if cgroup is not None:
                await self._remove_cgroup(cgroup)
            yield ToolResult(output=f"cannot start the command: {exc}", is_error=True)
            return
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
            await self._stop(proc, cgroup)
        after = await self._scan()
        files = tuple(
            CreatedFile(
                name=p.name,
                source="local",
                path=str(p),
                size_bytes=size,
                tool_use_id=call_id or None,
            )
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

    def _script(self, data: bytes) -> IO[bytes]:
        """The command as an unnamed file for the wrapper's stdin (no argv length limit)."""
        for folder in (self._home, self._home.parent / "tmp"):  # a command may remove them
            folder.mkdir(parents=True, exist_ok=True)
        script = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the child as stdin, closed after
        try:
            script.write(data)
            script.seek(0)
        except BaseException:
            script.close()
            raise
        return script

    def _new_cgroup(self) -> Path:
        """A new cgroup for one command (``OSError`` if it cannot be made)."""
        assert self._cgroup_session is not None
        group = self._cgroup_session / f"cmd-{next(self._counter)}"
        group.mkdir()
        self._cgroups.add(group)
        return group

    async def _remove_cgroup(self, group: Path) -> None:
        """Kill what is left in ``group`` and remove it (shielded, bounded)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_WAIT):
            # The kernel empties a killed cgroup within moments; nothing to wait on.
            while not _localproc.remove_cgroup(group):  # noqa: ASYNC110 - the kernel signals no event
                await anyio.sleep(0.002)
            self._cgroups.discard(group)

    async def _stop(self, proc: asyncio.subprocess.Process, cgroup: Path | None) -> None:
        """Stop everything ``proc`` started and reap it (shielded)."""
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                await self._stop_running(proc, cgroup)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group
            if cgroup is not None:
                await self._remove_cgroup(cgroup)
            self._processes.discard(proc)

    async def _stop_running(self, proc: asyncio.subprocess.Process, cgroup: Path | None) -> None:
        if self._containment in ("subreaper", "group"):
            # The shim stops everything itself (with the grace period) and exits.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with anyio.move_on_after(self.kill_grace + _STOP_WAIT):
                await proc.wait()
            return
        if self.kill_grace > 0:
            if cgroup is not None:
                _localproc.signal_cgroup(cgroup, signal.SIGTERM)
            else:  # bwrap does not pass signals on: reach into the sandbox
                _localproc.signal_tree(proc.pid, signal.SIGTERM)
            with anyio.move_on_after(self.kill_grace):
                await proc.wait()
        if cgroup is not None:
            _localproc.kill_cgroup(cgroup)
        else:
            # Kill the sandbox's init (not bwrap outside it): its exit waits
            # until the kernel has killed everything in the PID namespace, and
            # only then does bwrap exit, so nothing is left when wait() returns.
            _localproc.signal_tree(proc.pid, signal.SIGKILL, spare=b"")
        with anyio.move_on_after(_STOP_WAIT):
            await proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with anyio.move_on_after(_STOP_WAIT):
            await proc.wait()

    # -- created files -------------------------------------------------------

    async def _scan(self) -> dict[Path, tuple[int, int]]:
        """Snapshot the working directory (inline when small, else in a thread)."""
        if self._last_scan_size <= _INLINE_SCAN:
            seen = snapshot(self.workdir, _SCAN_LIMIT)
        else:
            seen = await anyio.to_thread.run_sync(snapshot, self.workdir, _SCAN_LIMIT)
        self._last_scan_size = len(seen)
        return seen

    # -- files for the application -------------------------------------------

    async def download(
        self,
        file: CreatedFile,
        directory: Path,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Copy a file from the working directory into ``directory``; return its path.

        Only files inside the working directory (after resolving symlinks)
        are handed out; the copy is written under a temporary name and renamed
        when complete.

        Raises:
            FileExistsError: The target exists and ``overwrite`` is false.
            FileNotFoundError: The file is gone, is not a regular file, or lies
                outside the working directory.
        """
        return await anyio.to_thread.run_sync(self._download, file, directory, overwrite)

    def _download(self, file: CreatedFile, directory: Path, overwrite: bool) -> Path:
        if not file.path:
            raise FileNotFoundError(f"{file.name} has no path in the working directory")
        return copy_confined(self.workdir, file.path, file.name, directory, overwrite=overwrite)
