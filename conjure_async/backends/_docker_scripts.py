"""The scripts the Docker backend runs inside its container.

Nothing here is ever interpolated into a shell string: every script is passed
as one element of the exec's ``Cmd`` array and its inputs as further argv
elements (``bash -c SCRIPT NAME ARG...``) or, for file contents, as JSON on
stdin. See ``docs/adr/0005-docker-exec-and-kill.md``.

* :data:`BASH_WRAPPER` runs a ``bash_tool`` command as a job (a forked
  subshell that evaluates it: no second ``bash`` to start) in its own process
  group, records the group id in ``/tmp/.conjure-<token>.pid``, and after the
  command ends kills what is left of the group, then writes a trailer
  (marker, exit code, OOM-kill and pids-limit counters, files changed under
  the workspace) to stdout.
* :data:`KILLER` kills the job of a token (used on timeout and cancellation);
  a ``.cancel`` file closes the race with a job that has not started yet.
* :data:`FILE_HELPER` serves ``view``/``create_file``/``str_replace``: it is
  the source of :mod:`conjure_async.backends._filetools`, the one
  implementation the Local backend runs too, reading one length-prefixed JSON
  request from stdin (no EOF needed, so it works over TLS connections too).
"""

from __future__ import annotations

import inspect
from typing import Final

from conjure_async.backends import _filetools

__all__ = ["BASH_WRAPPER", "FILE_HELPER", "KILLER", "trailer_marker"]


def trailer_marker(token: str) -> bytes:
    """The bytes separating a command's output from the wrapper's trailer."""
    return b"\x00\x00conjure-trailer-" + token.encode("ascii") + b"\x00"


# argv: $1 token, $2 command, $3 workspace to scan for changed files ("" = none)
BASH_WRAPPER: Final = r"""
t=$1; m=/tmp/.conjure-$t
exec 3>&2 2>/dev/null
counter() { # $1 key, files...; sets c
  local k v f=; c=0
  for f in "${@:2}"; do
    [[ -r $f ]] || continue
    while read -r k v; do [[ $k == "$1" ]] && { c=$v; return; }; done < "$f"
  done
}
oomf=(/sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control)
pidf=(/sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events)
counter oom_kill "${oomf[@]}"; oom0=$c
counter max "${pidf[@]}"; pid0=$c
[[ -n $3 ]] && : > "$m.start"
__c=$2
set -m
(
  set +m; unset -v t m c oomf pidf oom0 pid0; unset -f counter; set --
  exec 2>&3 3>&- </dev/null
  eval "unset -v __c; $__c"
) &
p=$!
echo "$p" > "$m.pid"
[[ -e $m.cancel ]] && kill -9 -- "-$p"
wait "$p"; rc=$?
kill -9 -- "-$p"
set +m
counter oom_kill "${oomf[@]}"; oom1=$c
counter max "${pidf[@]}"; pid1=$c
printf '\0\0conjure-trailer-%s\0%s %s %s\0' "$t" "$rc" "$((oom1 - oom0))" "$((pid1 - pid0))"
if [[ -n $3 ]]; then
  shopt -s globstar nullglob dotglob
  n=0
  for f in "$3"/**; do
    ((++n > 5000)) && break
    [[ -f $f && ! -L $f && ! $f -ot $m.start ]] && printf '%s\0' "$f"
  done
fi
rm -f -- "$m.pid" "$m.start" "$m.cancel"
exit "$rc"
"""

# argv: $1 token
KILLER: Final = r"""
m=/tmp/.conjure-$1
: > "$m.cancel"
p=
read -r p < "$m.pid" 2>/dev/null
[[ -n $p ]] && kill -9 -- "-$p" 2>/dev/null
exit 0
"""

FILE_HELPER: Final = inspect.getsource(_filetools)
"""The shared file tools module itself, run in the container by ``python3 -c``."""
