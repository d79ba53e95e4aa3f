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
* :data:`FILE_HELPER` serves ``view``/``create_file``/``str_replace`` with the
  Local backend's confinement and messages, reading one length-prefixed JSON
  request from stdin (no EOF needed, so it works over TLS connections too).
"""

from __future__ import annotations

from typing import Final

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

FILE_HELPER: Final = r"""
import json, os, sys

def main():
    size = int(sys.stdin.buffer.readline())
    req = json.loads(sys.stdin.buffer.read(size).decode("utf-8"))
    try:
        out = serve(req)
    except Refused as exc:
        out = {"ok": False, "output": str(exc)}
    sys.stdout.write(json.dumps(out))

class Refused(Exception):
    pass

def resolve(req, raw, write):
    work = req["workspace"]
    ro = req["readonly_roots"]
    if not isinstance(raw, str) or not raw:
        raise Refused("path must be a non-empty string")
    if "\x00" in raw:
        raise Refused("path must not contain NUL bytes")
    path = raw if os.path.isabs(raw) else os.path.join(work, raw)
    real = os.path.realpath(path)
    def inside(root):
        return real == root or real.startswith(root.rstrip("/") + "/")
    if inside(work):
        return real
    if any(inside(r) for r in ro):
        if write:
            raise Refused(raw + " is inside a skill folder, which is read-only")
        return real
    raise Refused(raw + " is outside the allowed folders (the working directory " + work
                  + " and the skill folders)")

def view(req, args):
    raw = args.get("path")
    path = resolve(req, raw, False)
    if not os.path.exists(path):
        raise Refused(str(raw) + " does not exist")
    limit = req["limit"]
    if os.path.isdir(path):
        lines = [path + "/"]
        for name in sorted(os.listdir(path)):
            child = os.path.join(path, name)
            isdir = os.path.isdir(child)
            lines.append("  " + name + ("/" if isdir else ""))
            if isdir and not os.path.islink(child):
                for g in sorted(os.listdir(child)):
                    sub = os.path.isdir(os.path.join(child, g))
                    lines.append("    " + g + ("/" if sub else ""))
            if len(lines) > 10000:
                break
        return {"ok": True, "output": "\n".join(lines)}
    with open(path, "rb") as fh:
        data = fh.read(64 * 1024 * 1024)
    if b"\x00" in data[:8192]:
        size = str(os.path.getsize(path))
        return {"ok": True, "output": path + " is a binary file (" + size + " bytes)"}
    all_lines = data.decode("utf-8", errors="replace").splitlines()
    start, end = 1, len(all_lines)
    vr = args.get("view_range")
    if vr is not None:
        start, end = int(vr[0]), int(vr[1])
        if end == -1:
            end = len(all_lines)
        if start < 1 or end < start or start > max(len(all_lines), 1):
            raise Refused("view_range " + json.dumps(vr).replace(",", ", ")
                          + " is invalid for a file of " + str(len(all_lines)) + " lines")
    parts, total = [], 0
    for number in range(start, min(end, len(all_lines)) + 1):
        line = "%6d\t%s\n" % (number, all_lines[number - 1])
        parts.append(line)
        total += len(line)
        if total > 4 * limit:
            break
    return {"ok": True, "output": "".join(parts) or "(empty file)"}

def create(req, args):
    path = resolve(req, args.get("path"), True)
    text = args.get("file_text")
    if not isinstance(text, str):
        raise Refused("file_text must be a string")
    if os.path.isdir(path):
        raise Refused(path + " is a directory")
    existed = os.path.exists(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise Refused("cannot write " + path + ": " + (exc.strerror or str(exc)))
    verb = "Updated" if existed else "Created"
    return {"ok": True, "output": verb + " " + path,
            "file": {"path": path, "size": os.path.getsize(path)}}

def str_replace(req, args):
    path = resolve(req, args.get("path"), True)
    old, new = args.get("old_str"), args.get("new_str", "")
    if not isinstance(old, str) or not old or not isinstance(new, str):
        raise Refused("old_str must be a non-empty string and new_str a string")
    if not os.path.isfile(path):
        raise Refused(path + " is not a file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    count = text.count(old)
    if count == 0:
        raise Refused("old_str was not found in " + path)
    if count > 1:
        raise Refused("old_str occurs " + str(count) + " times in " + path
                      + "; include more context to make it unique")
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text.replace(old, new, 1))
    except OSError as exc:
        raise Refused("cannot write " + path + ": " + (exc.strerror or str(exc)))
    return {"ok": True, "output": "Replaced 1 occurrence in " + path}

def serve(req):
    op, args = req["op"], req["args"]
    if op == "view":
        return view(req, args)
    if op == "create_file":
        return create(req, args)
    if op == "str_replace":
        return str_replace(req, args)
    raise Refused("unknown operation " + repr(op))

main()
"""
