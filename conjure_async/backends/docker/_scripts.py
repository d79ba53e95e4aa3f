r"""The scripts the Docker backend runs inside its container.

Nothing here is ever interpolated into a shell string: every script is passed
as one element of the exec's ``Cmd`` array and its inputs as further argv
elements (``bash -c SCRIPT NAME ARG...``) or on stdin: a ``bash_tool``
command as ``<length>\n<bytes>`` (so its length is not bounded by the
kernel's argument limit), file contents as JSON. See
``docs/adr/0005-docker-exec-and-kill.md``.

The backend mounts a small tmpfs of its own at :data:`CONTROL_DIR` for the
scripts' marker files, so nothing depends on the image's ``/tmp``.

* :data:`PREPARE` runs once per container, right after it starts: is the
  workspace writable by the user, is the control directory, and which
  processes belong to the image (spared by every sweep).
* :data:`BASH_WRAPPER` runs a ``bash_tool`` command in a ``bash`` of its own
  (``bash -c 'read...; eval "$c"' bash``: the command's line numbers and
  ``$0`` are exactly those of ``bash -c COMMAND``) as a job in its own
  process group, with ``CONJURE_CALL=<token>`` in its environment. When the
  command's shell exits it kills the group, then *sweeps*: every process of
  this call (its tree, or carrying its token, however it detached: ``setsid``,
  double fork) and every orphan no live call claims, until none is left.
  Then it writes a trailer (marker, exit code, OOM-kill and pids-limit
  counters, processes that could not be killed, files changed under the
  workspace with their sizes) to stdout.
* :data:`KILLER` does the same sweep for a call that timed out or was
  cancelled (the call's wrapper included) and exits 0 only when none of its
  processes is left; a ``.cancel`` file in the control directory closes the
  race with a wrapper that has not started yet.
* :data:`FILE_HELPER` serves ``view``/``create_file``/``str_replace``: it is
  the source of :mod:`conjure_async.backends._filetools`, the one
  implementation the Local backend runs too, reading one length-prefixed JSON
  request from stdin (no EOF needed, so it works over TLS connections too).
"""

from __future__ import annotations

import inspect
from typing import Final

from conjure_async.backends import _filetools

__all__ = [
    "BASH_WRAPPER",
    "CONTROL_DIR",
    "FILE_HELPER",
    "KILLER",
    "PREPARE",
    "trailer_marker",
]

CONTROL_DIR: Final = "/run/conjure"
"""The backend's own tmpfs in every container (mode 1777) for marker files."""


def trailer_marker(token: str) -> bytes:
    """The bytes separating a command's output from the wrapper's trailer."""
    return b"\x00\x00conjure-trailer-" + token.encode("ascii") + b"\x00"


# argv: $1 workspace, $2 control dir, $3 the egress marker file ("" = no
# policy), $4 the forwarder's port as ":HHHH" (hex, as /proc/net/tcp shows
# it). Prints "<workspace> <control> <network>" (ok, missing or denied; the
# network: none, ok, unseen (the marker is not there: the engine mounted a
# folder of another machine) or noforwarder), then the pids running now (the
# image's: never swept; the forwarder among them).
PREPARE: Final = r"""
n=none
if [[ -n $3 ]]; then
  n=unseen
  if [[ -e $3 ]]; then
    n=noforwarder
    for ((i = 0; i < 300; i++)); do
      while read -r _ a _ st _; do
        [[ $a == *"$4" && $st == 0A ]] && { n=ok; break 2; }
      done < /proc/net/tcp
      sleep 0.01
    done
  fi
fi
sp=
for f in /proc/[0-9]*; do x=${f#/proc/}; ((x == $$)) || sp+=" $x"; done
if [[ ! -d $1 ]]; then s=missing; elif [[ -w $1 && -x $1 ]]; then s=ok; else s=denied; fi
if [[ -d $2 && -w $2 && -x $2 ]]; then c=ok; else c=denied; fi
printf '%s %s %s\n%s\n' "$s" "$c" "$n" "${sp# }"
[[ $s == ok ]] || { id; ls -ldn -- "$1"; } 2>&1
exit 0
"""

# The sweep shared by BASH_WRAPPER and KILLER. Needs $t (the call's token)
# and $spare (pids never to kill); stdin must stay open (nap reads it).
# pick SKIP -> tgt: the pids to kill now. A process is the call's when its
# ancestors lead to the call's wrapper (an exec whose argv names the token);
# a process whose ancestors lead to another exec belongs to that exec; an
# orphan (reparented to pid 1) is spared only when it carries the token of
# another call that is still running. Pure builtins: no fork, no file written.
_SWEEP = r"""
nap() { read -r -t "$1" -u 0 _ || :; }
pick() {
  local f s r x n pp st mk
  local -A par=() live=() sp=()
  local -a a e
  tgt=()
  for x in $spare; do sp[$x]=1; done
  for f in /proc/[0-9]*/stat; do
    s=
    read -r s < "$f" || [[ -n $s ]] || continue
    x=${s%% *}; r=${s##*) }
    st=${r%% *}; r=${r#* }; pp=${r%% *}
    [[ $st == [ZXx] ]] && continue
    par[$x]=$pp
    if ((pp == 0 && x != 1)); then
      a=(); mapfile -d '' -t a < "/proc/$x/cmdline"
      [[ ${a[3]-} == conjure-bash && -n ${a[4]-} ]] && live[${a[4]}]=$x
    fi
  done
  for x in "${!par[@]}"; do
    ((x == 1 || x == $1)) && continue
    [[ -n ${sp[$x]-} ]] && continue
    r=$x; n=0
    while ((n++ < 100000)); do
      pp=${par[$r]}
      ((pp == 0 || pp == 1)) && break
      [[ -n ${par[$pp]-} ]] || { pp=1; break; }
      r=$pp
    done
    if ((pp == 0)); then
      [[ $r == "${live[$t]-}" ]] && tgt+=("$x")
      continue
    fi
    [[ -n ${sp[$r]-} ]] && continue
    e=(); mapfile -d '' -t e < "/proc/$x/environ"
    mk=
    for s in "${e[@]}"; do [[ $s == CONJURE_CALL=* ]] && { mk=${s#*=}; break; }; done
    [[ -n $mk && $mk != "$t" && -n ${live[$mk]-} ]] && continue
    tgt+=("$x")
  done
}
sweep() { # $1: a pid to spare (the wrapper itself); 0 when the call is over
  local i d
  for ((i = 1; i <= 60; i++)); do
    pick "$1"
    ((${#tgt[@]})) || return 0
    kill -9 "${tgt[@]}"
    printf -v d '0.%02d' "$((i < 9 ? i : 9))"
    nap "$d"
  done
  pick "$1"
  ((${#tgt[@]} == 0))
}
"""

# argv: $1 token, $2 workspace to scan for changed files ("" = none),
# $3 control dir, $4 spared pids. stdin: "<length>\n<command>".
BASH_WRAPPER: Final = (
    r"""
t=$1; m=$3/$1; spare=$4
exec 3>&2 2>/dev/null
[[ -e $m.cancel ]] && exit 137
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
scan=
[[ -n $2 ]] && : > "$m.start" && scan=$2
set -m
(
  exec 2>&3 3>&-
  export CONJURE_CALL=$t
  exec "$BASH" -c 'IFS= read -r n; IFS= LC_ALL=C read -r -N "$n" c; exec </dev/null; '\
'unset n; eval "unset c; $c"' bash
) &
p=$!
[[ -e $m.cancel ]] && kill -9 -- "-$p"
wait "$p"; rc=$?
set +m
kill -9 -- "-$p"
"""
    + _SWEEP
    + r"""
sweep "$$"
left=${#tgt[@]}
counter oom_kill "${oomf[@]}"; oom1=$c
counter max "${pidf[@]}"; pid1=$c
printf '\0\0conjure-trailer-%s\0%s %s %s %s\0' \
  "$t" "$rc" "$((oom1 - oom0))" "$((pid1 - pid0))" "$left"
if [[ -n $scan ]]; then
  shopt -s globstar nullglob dotglob
  ch=(); n=0
  for f in "$scan"/**; do
    ((++n > 5000)) && break
    [[ -f $f && ! -L $f && ! $f -ot $m.start ]] && ch+=("$f")
  done
  if ((${#ch[@]})); then
    stat --printf '%s %n\0' -- "${ch[@]}"
    (($? > 1)) && printf '? %s\0' "${ch[@]}"
  fi
  rm -f -- "$m.start"
fi
exit "$rc"
"""
)

# argv: $1 token, $2 control dir, $3 spared pids; stdin attached and left
# open. Exit 0: nothing of the call is left; 1: the survivors, "pid comm".
KILLER: Final = (
    r"""
t=$1; spare=$3
exec 2>/dev/null
: > "$2/$1.cancel"
"""
    + _SWEEP
    + r"""
sweep 0 && exit 0
for x in "${tgt[@]}"; do
  s=; read -r s < "/proc/$x/stat"; s=${s#* (}; printf '%s %s\n' "$x" "${s%%) *}"
done
exit 1
"""
)

FILE_HELPER: Final = inspect.getsource(_filetools)
"""The shared file tools module itself, run in the container by ``python3 -c``."""
