r"""How the Local backend runs one command so that nothing it started outlives it.

Every ``bash_tool`` command runs through :data:`WRAPPER` (``bash -c WRAPPER``):
the command text arrives on stdin (a temporary file, so its length does not
matter), the wrapper moves it to fd 3, gives the command ``/dev/null`` as
stdin and ``eval``\ s it in a subshell on line 1, so bash's messages say
``bash: line N`` with N the line of the model's command.

What stands between the backend and that bash decides what "nothing outlives
it" rests on (:class:`Containment`):

* ``cgroup`` -- a cgroup v2 per command, where this process may create them
  (root, or a delegated subtree such as a systemd user session). The wrapper
  moves itself in before the command starts; when the command's shell exits
  it moves itself out and writes ``cgroup.kill``, which the kernel applies to
  every process in the cgroup at once, however it detached (``setsid``,
  double fork, daemons). Only a process that moves itself to another cgroup
  (which needs write access to that cgroup) gets out.
* ``subreaper`` -- a small Python shim (:data:`SHIM`) marks itself a child
  subreaper (``PR_SET_CHILD_SUBREAPER``), runs bash in a process group of its
  own, and when bash exits kills bash's group and every process reparented to
  it, until it has no children left. Detached descendants are reparented to
  the shim, not to init, so they are found too.
* ``group`` -- the same shim without the subreaper (systems without
  ``prctl``): the command's process group and the shim's direct children.
  Processes that left the group and whose parent died are not found.
* ``pidns`` -- ``sandbox="bwrap"``: the command runs in a PID namespace whose
  init ends when the command's shell ends, and the kernel kills everything
  else in the namespace with it (and ``--die-with-parent`` when bwrap itself
  is killed).

In every mode the command's top process exits only after the clean-up, so the
backend returns as soon as the shell exits, even when a background child holds
the output pipe.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "SHIM",
    "WRAPPER",
    "CommandRefusedError",
    "Containment",
    "bwrap_argv",
    "cgroup_base",
    "command_bytes",
    "kill_cgroup",
    "remove_cgroup",
    "signal_cgroup",
    "signal_tree",
]

Containment = Literal["cgroup", "subreaper", "group", "pidns"]

# $1: the command's cgroup ("" for none), $2: the cgroup to return to. One line,
# so the eval'd command's line numbers are its own. The wrapper outlives a
# SIGTERM (its trap is a handler, which the command's subshell does not
# inherit), so a stop with a grace period lets the command's own traps run.
WRAPPER: Final = (
    'trap : TERM; exec 3<&0 </dev/null; c=$1 p=$2; set --; '
    '[ -z "$c" ] || echo 0 >"$c/cgroup.procs" || exit 125; '
    '(unset -v c p; eval "$(</dev/fd/3)" 3<&-); r=$?; '
    '[ -z "$c" ] || { echo 0 >"$p/cgroup.procs"; echo 1 >"$c/cgroup.kill"; }; '
    'exit $r'
)  # fmt: skip

# argv: grace seconds, then the program to run (bash ...). SIGTERM: stop now.
SHIM: Final = r"""
import os, sys, time
import _signal as signal  # the C module: the ``signal`` wrapper imports enum (10 ms)

class Stop(Exception):
    pass

def stop(signum, frame):
    raise Stop

def children():
    me = os.getpid()
    try:  # CONFIG_PROC_CHILDREN: this process's children, without a scan
        with open("/proc/%d/task/%d/children" % (me, me), "rb") as f:
            return {int(pid) for pid in f.read().split()}
    except OSError:
        pass
    found = set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            try:
                with open("/proc/" + name + "/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                        found.add(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return found

def send(child, pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    try:
        os.killpg(child, sig)
    except OSError:
        pass

def reap(child, status):
    # Reap every child that has ended; return (bash's status, whether any child is left).
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status, False
        if pid == 0:
            return status, True
        if pid == child and status is None:
            status = st

def main():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass
    grace, argv = float(sys.argv[1]), sys.argv[2:]
    signal.signal(signal.SIGTERM, stop)
    child = os.fork()
    if child == 0:
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execvp(argv[0], argv)
        except BaseException as exc:
            os.write(2, ("cannot run %s: %s\n" % (argv[0], exc)).encode())
        os._exit(127)
    status = None
    try:
        _, status = os.waitpid(child, 0)
    except Stop:
        signal.signal(signal.SIGALRM, stop)
        try:
            if grace > 0:
                send(child, children(), signal.SIGTERM)
                signal.setitimer(signal.ITIMER_REAL, grace)
                _, status = os.waitpid(child, 0)
        except Stop:
            pass
        signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Kill bash's group and every child (descendants that detached are
    # reparented here, the subreaper), until no child is left.
    while True:
        send(child, children(), signal.SIGKILL)
        status, left = reap(child, status)
        if not left:
            break
        time.sleep(0.001)
    code = os.waitstatus_to_exitcode(status) if status is not None else 128 + signal.SIGKILL
    if code < 0:  # die the way bash died
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)

main()
"""


class CommandRefusedError(Exception):
    """A tool request the backend refuses before running it (becomes an error result)."""


def command_bytes(command: str) -> bytes:
    """The command as bytes for the wrapper, or :class:`CommandRefusedError` saying why not."""
    if not command.strip():
        raise CommandRefusedError("bash_tool needs a non-empty command")
    if "\x00" in command:
        raise CommandRefusedError("the command contains a NUL character, which bash cannot run")
    try:
        return command.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise CommandRefusedError("the command is not valid Unicode text") from None


def _hidden_by_tmp(paths: Iterable[str]) -> list[str]:
    """The real paths among ``paths`` that bwrap's private ``/tmp`` would hide."""
    found: list[str] = []
    for raw in paths:
        if not raw or not Path(raw).is_absolute():
            continue
        real = os.path.realpath(raw)
        if (real == "/tmp" or real.startswith("/tmp/")) and real not in found:  # noqa: S108 - paths the private /tmp hides
            found.append(real)
    return found


def _interpreter_paths(path_variable: str) -> list[str]:
    """The interpreter's prefixes, the ``PATH`` entries and the virtualenvs they belong to."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for entry in path_variable.split(os.pathsep):
        if not entry:
            continue
        paths.append(entry)
        venv = Path(entry).parent
        with contextlib.suppress(OSError, UnicodeDecodeError):
            config = (venv / "pyvenv.cfg").read_text()
            paths.append(str(venv))
            for line in config.splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    paths.append(str(Path(value.strip()).parent))
    return paths


def bwrap_argv(
    *,
    workdir: Path,
    home: Path,
    roots: Iterable[Path],
    path_variable: str,
    command: Sequence[str],
    readonly: Iterable[Path] = (),
) -> list[str]:
    """The bubblewrap command line running ``command`` in the sandbox.

    Read-only root, a private ``/tmp`` (with the interpreter's environment and
    the ``PATH`` entries it would hide bound back read-only), the private home
    and the working directory writable, the skill folders read-only, every
    namespace unshared (no network), a PID namespace that ends with the
    command, and the sandbox killed if bwrap dies. ``readonly`` folders (the
    egress folder with the proxy's socket) are bound read-only at their paths.
    """
    argv = [
        "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
    ]  # fmt: skip
    for hidden in _hidden_by_tmp(_interpreter_paths(path_variable)):
        argv += ["--ro-bind-try", hidden, hidden]
    argv += ["--bind", str(home), str(home), "--bind", str(workdir), str(workdir)]
    for root in (*roots, *readonly):
        argv += ["--ro-bind", str(root), str(root)]
    argv += [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--chdir", str(workdir),
        *command,
    ]  # fmt: skip
    return argv


def cgroup_base() -> Path | None:
    """This process's cgroup v2 directory, if it exists and looks writable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    for mount in mounts:
        fields = mount.split()
        if " - cgroup2 " not in mount or len(fields) < 5:
            continue
        root, point = fields[3], fields[4]
        if not (relative == root or relative.startswith(root.rstrip("/") + "/")):
            continue
        base = Path(point) / relative[len(root) :].lstrip("/")
        if os.access(base, os.W_OK) and os.access(base / "cgroup.procs", os.W_OK):
            return base
    return None


def kill_cgroup(path: Path) -> None:
    """Kill every process in the cgroup ``path`` (nothing if it is gone)."""
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")


def signal_cgroup(path: Path, signum: int) -> None:
    """Send ``signum`` to every process in the cgroup ``path``."""
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signum)


def signal_tree(root: int, signum: int, *, spare: bytes = b"bwrap") -> None:
    """Send ``signum`` to the descendants of ``root`` (through ``/proc``).

    Processes named ``spare`` (bubblewrap's own, which would take the sandbox
    down with SIGKILL) are passed over, not their descendants.
    """
    children: dict[int, list[tuple[int, bytes]]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry.name}/stat", "rb") as f:  # noqa: PTH123 - hot loop, no Path objects
                    data = f.read()
                name = data[data.index(b"(") + 1 : data.rindex(b")")]
                parent = int(data.rsplit(b")", 1)[1].split()[1])
                children.setdefault(parent, []).append((int(entry.name), name))
    stack = list(children.get(root, ()))
    while stack:
        pid, name = stack.pop()
        stack.extend(children.get(pid, ()))
        if name != spare:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)


def remove_cgroup(path: Path) -> bool:
    """Remove an empty cgroup (killing what is left first); return whether it is gone."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        kill_cgroup(path)
        return False
    return True
