# ruff: noqa: PTH103, PTH105, PTH108, PTH117, PTH118, PTH120
# (plain os calls on str paths: the same code runs in containers)
"""The file tools (``view``, ``create_file``, ``str_replace``): one implementation.

The Local backend calls :func:`serve` in a worker thread; the Docker backend
runs this very file inside its container (``docker._scripts.FILE_HELPER`` is
its source, executed by ``python3 -c``, where :func:`main` reads one request
from stdin). So it imports only the standard library and stays compatible
with old Python 3 interpreters in container images.

A request is ``{"op", "args", "workspace", "readonly_roots", "limit"}``; the
reply is ``{"ok": bool, "output": str}`` plus, for a written file,
``"file": {"path", "size"}``.

The rules, the same in both places:

* **Confinement**: a path is resolved (symlinks included) and must lie in the
  workspace (read-write) or a read-only root (skill folders).
* **Only regular files** are read or written: anything else (named pipe,
  socket, device) is refused before it is opened, and files are opened with
  ``O_NONBLOCK | O_NOFOLLOW`` and checked again with ``fstat``, so no call can
  block on a pipe that something swapped in.
* **Bounded reads**: ``view`` reads a file in chunks and stops once it has as
  much as it may return (``limit`` characters), saying how large the file is
  and how to page on with ``view_range``; ``str_replace`` edits files up to
  :data:`MAX_EDIT_BYTES`.
* **No corruption**: a file that is not valid UTF-8 is edited with its other
  bytes kept as they were (undecodable bytes round-trip through
  ``surrogateescape``); a match glued to such bytes (possibly half of a
  character in another encoding) is refused. Writes go to a temporary file in
  the same folder that replaces the target when complete (the mode is kept).
* **Cancellable**: the long loops call ``should_stop`` between chunks.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    _Stop = Callable[[], bool] | None

MAX_EDIT_BYTES = 32 * 1024 * 1024
"""Largest file ``str_replace`` edits (it holds the file in memory)."""

_CHUNK = 1 << 16
_BINARY_PROBE = 8192
_DIR_ENTRIES = 1000
_NOTE_ROOM = 240  # characters kept free for the paging note
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Refused(Exception):  # noqa: N818 - a short name inside the container too
    """A request the rules refuse or the file system failed (becomes an error result)."""


def serve(request: dict[str, Any], should_stop: _Stop = None) -> dict[str, Any]:
    """Answer one file tool request; never raises for a bad request or file."""
    try:
        return _dispatch(request, should_stop)
    except Refused as exc:
        return {"ok": False, "output": str(exc)}


def _dispatch(request: dict[str, Any], should_stop: _Stop) -> dict[str, Any]:
    op = request.get("op")
    args = request.get("args")
    if not isinstance(args, dict):
        raise Refused("the tool input must be an object")
    if op == "view":
        return _view(request, args, should_stop)
    if op == "create_file":
        return _create(request, args)
    if op == "str_replace":
        return _str_replace(request, args, should_stop)
    raise Refused("unknown file tool " + repr(op))


# -- paths ---------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _resolve(request: dict[str, Any], raw: Any, *, write: bool) -> str:
    work = request["workspace"]
    if not isinstance(raw, str) or not raw:
        raise Refused("path must be a non-empty string")
    if "\x00" in raw:
        raise Refused("path must not contain NUL bytes")
    path = raw if os.path.isabs(raw) else os.path.join(work, raw)
    real = os.path.realpath(path)
    if _inside(real, work):
        return real
    if any(_inside(real, root) for root in request["readonly_roots"]):
        if write:
            raise Refused(raw + " is inside a skill folder, which is read-only")
        return real
    raise Refused(
        raw + " is outside the allowed folders (the working directory " + work
        + " and the skill folders)"
    )  # fmt: skip


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a special file"


def _not_regular(path: str, mode: int) -> Refused:
    return Refused(path + " is not a regular file (it is " + _kind(mode) + ")")


def _failed(action: str, path: str, exc: OSError) -> Refused:
    return Refused("cannot " + action + " " + path + ": " + (exc.strerror or str(exc)))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _failed("read", path, exc) from None


def _open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open an existing regular file for reading without ever blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(path + " does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(path + " changed while it was being opened") from None
        raise _failed("read", path, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return fd, st


def _read_chunk(fd: int, path: str) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError as exc:
        raise _failed("read", path, exc) from None


def _check(should_stop: _Stop) -> None:
    if should_stop is not None and should_stop():
        raise Refused("stopped")


# -- view ----------------------------------------------------------------------


def _view(request: dict[str, Any], args: dict[str, Any], should_stop: _Stop) -> dict[str, Any]:
    raw = args.get("path")
    path = _resolve(request, raw, write=False)
    limit = max(int(request.get("limit", 30000)), 2 * _NOTE_ROOM)
    st = _lstat(path)
    if st is None:
        raise Refused(str(raw) + " does not exist")
    if stat.S_ISDIR(st.st_mode):
        return {"ok": True, "output": _listing(path, limit)}
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    start, end = _view_range(args.get("view_range"))
    fd, st = _open_regular(path)
    try:
        return {
            "ok": True,
            "output": _lines(
                fd,
                path,
                size=st.st_size,
                start=start,
                end=end,
                limit=limit,
                should_stop=should_stop,
            ),
        }
    finally:
        os.close(fd)


def _listing(path: str, limit: int) -> str:
    lines = [path + "/"]
    for name, is_dir, is_link in _entries(path):
        lines.append("  " + name + ("/" if is_dir else ""))
        if is_dir and not is_link:
            child = os.path.join(path, name)
            lines.extend("    " + g + ("/" if d else "") for g, d, _ in _entries(child))
    text = "\n".join(lines)
    if len(text) > limit:
        cut = text.rfind("\n", 0, limit - _NOTE_ROOM)
        text = text[: max(cut, 0)] + "\n[... listing cut; view a subfolder to see more]"
    return text


def _entries(path: str) -> list[tuple[str, bool, bool]]:
    """Up to :data:`_DIR_ENTRIES` entries of a folder, sorted (name, is_dir, is_symlink)."""
    found: list[tuple[str, bool, bool]] = []
    try:
        with os.scandir(path) as scan:
            for entry in scan:
                try:
                    is_dir = entry.is_dir()
                    is_link = entry.is_symlink()
                except OSError:
                    is_dir = is_link = False
                found.append((entry.name, is_dir, is_link))
                if len(found) >= _DIR_ENTRIES:
                    found.append(("[... more entries not listed]", False, True))
                    break
    except OSError as exc:
        raise _failed("list", path, exc) from None
    return sorted(found)


def _view_range(value: Any) -> tuple[int, int]:
    """``(start, end)`` 1-indexed; ``end`` 0 means the end of the file."""
    if value is None:
        return 1, 0
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise Refused("view_range must be two integers [start, end]")
    start, end = value[0], value[1]
    if end == -1:
        end = 0
    if start < 1 or (end != 0 and end < start):
        raise Refused("view_range " + _show(value) + " is invalid")
    return start, end


def _show(value: Any) -> str:
    return json.dumps(value).replace(",", ", ")


def _lines(
    fd: int,
    path: str,
    *,
    size: int,
    start: int,
    end: int,
    limit: int,
    should_stop: _Stop,
) -> str:
    """Numbered lines ``start..end`` read in chunks, at most ``limit`` characters in all."""
    chunk = _read_chunk(fd, path)
    if b"\x00" in chunk[:_BINARY_PROBE]:
        return path + " is a binary file (" + str(size) + " bytes)"
    budget = limit - _NOTE_ROOM
    parts: list[str] = []
    used = 0
    number = 1  # the line being read
    line = bytearray()  # its bytes, kept only while it is in range (and capped)
    open_line = False  # whether the bytes read so far end inside a line
    while True:
        if not chunk:  # end of file: a last line without a newline still counts
            total = number if open_line else number - 1
            if open_line and number >= start:
                text = _numbered(number, line)
                if used + len(text) > budget:
                    return _stop(parts, text, budget - used, number=number, size=size, path=path)
                parts.append(text)
            if start > max(total, 1):
                raise Refused(
                    "view_range starts at line " + str(start) + " but " + path + " has "
                    + str(total) + " lines (" + str(size) + " bytes)"
                )  # fmt: skip
            return "".join(parts) or "(empty file)"
        open_line = not chunk.endswith(b"\n")
        at = 0
        if number < start:  # skip whole lines quickly
            skipped = chunk.count(b"\n")
            if number + skipped < start:
                number += skipped
                at = len(chunk)
            else:
                while number < start:
                    at = chunk.index(b"\n", at) + 1
                    number += 1
        while at < len(chunk):
            newline = chunk.find(b"\n", at)
            piece = chunk[at:] if newline < 0 else chunk[at:newline]
            # A UTF-8 character has at most 4 bytes: past this many bytes the
            # line cannot fit in what is left, so nothing more of it is read.
            room = 4 * (budget - used) + 4
            line += piece[: room - len(line)]
            if len(line) >= room:
                return _stop(
                    parts,
                    _numbered(number, line),
                    budget - used,
                    number=number,
                    size=size,
                    path=path,
                )
            if newline < 0:
                break
            text = _numbered(number, line)
            if used + len(text) > budget:
                return _stop(parts, text, budget - used, number=number, size=size, path=path)
            parts.append(text)
            used += len(text)
            line = bytearray()
            if number == end:
                return "".join(parts)
            number += 1
            at = newline + 1
        _check(should_stop)
        chunk = _read_chunk(fd, path)


def _numbered(number: int, line: bytearray) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return f"{number:6}\t{line.decode('utf-8', 'replace')}\n"


def _stop(parts: list[str], text: str, room: int, *, number: int, size: int, path: str) -> str:
    """The output so far plus a note saying where it stopped and how to go on."""
    if parts:
        shown = number - 1
        per_call = max(shown - int(parts[0].split("\t", 1)[0]) + 1, 1)
        note = (
            "[output stopped after line " + str(shown) + " to stay within the output limit; "
            + path + " has " + str(size) + " bytes; continue with view_range ["
            + str(number) + ", " + str(number + per_call - 1) + "]]"
        )  # fmt: skip
        return "".join(parts) + note
    note = (
        "\n[line " + str(number) + " is longer than the output limit and was cut; " + path
        + " has " + str(size) + " bytes; use bash_tool (e.g. cut or head -c) to read the rest,"
        + " or view_range [" + str(number + 1) + ", -1] for the lines after it]"
    )  # fmt: skip
    return text[: max(room, 0)] + note


# -- writing -------------------------------------------------------------------


def _write(path: str, data: bytes, mode: int | None) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it."""
    folder, name = os.path.split(path)
    partial = os.path.join(folder, "." + name[:64] + "." + os.urandom(4).hex() + ".tmp")
    try:
        fd = os.open(
            partial,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
            0o666 if mode is None else mode,
        )
    except OSError as exc:
        raise _failed("write", path, exc) from None
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise _failed("write", path, exc) from None


def _existing_mode(path: str) -> int | None:
    """The permission bits of an existing regular file, or None if there is none."""
    st = _lstat(path)
    if st is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise Refused(path + " is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    if not os.access(path, os.W_OK):
        raise Refused("cannot write " + path + ": Permission denied")
    return stat.S_IMODE(st.st_mode)


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(what + " contains characters that are not valid Unicode text") from None


def _written(verb: str, path: str, size: int) -> dict[str, Any]:
    return {"ok": True, "output": verb + " " + path, "file": {"path": path, "size": size}}


def _create(request: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    path = _resolve(request, args.get("path"), write=True)
    text = args.get("file_text")
    if not isinstance(text, str):
        raise Refused("file_text must be a string")
    data = _utf8(text, "file_text")
    mode = _existing_mode(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as exc:
        raise _failed("create the folder of", path, exc) from None
    _write(path, data, mode)
    return _written("Updated" if mode is not None else "Created", path, len(data))


def _str_replace(
    request: dict[str, Any], args: dict[str, Any], should_stop: _Stop
) -> dict[str, Any]:
    path = _resolve(request, args.get("path"), write=True)
    old, new = args.get("old_str"), args.get("new_str", "")
    if not isinstance(old, str) or not old or not isinstance(new, str):
        raise Refused("old_str must be a non-empty string and new_str a string")
    _utf8(old, "old_str")
    _utf8(new, "new_str")
    mode = _existing_mode(path)
    if mode is None:
        raise Refused(path + " is not a file")
    fd, st = _open_regular(path)
    try:
        if st.st_size > MAX_EDIT_BYTES:
            raise Refused(
                path + " has " + str(st.st_size) + " bytes; str_replace edits files up to "
                + str(MAX_EDIT_BYTES) + " bytes (use bash_tool for larger ones)"
            )  # fmt: skip
        data = bytearray()
        while len(data) <= MAX_EDIT_BYTES:
            chunk = _read_chunk(fd, path)
            if not chunk:
                break
            data += chunk
            _check(should_stop)
    finally:
        os.close(fd)
    if len(data) > MAX_EDIT_BYTES:
        raise Refused(path + " grew past " + str(MAX_EDIT_BYTES) + " bytes while being read")
    try:
        text = data.decode("utf-8")
        clean = True
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        clean = False
    count = text.count(old)
    if count == 0:
        raise Refused("old_str was not found in " + path)
    if count > 1:
        raise Refused(
            "old_str occurs " + str(count) + " times in " + path
            + "; include more context to make it unique"
        )  # fmt: skip
    at = text.index(old)
    note = ""
    if not clean:
        around = text[max(at - 1, 0) : at] + text[at + len(old) : at + len(old) + 1]
        if any("\udc80" <= ch <= "\udcff" for ch in around):
            raise Refused(
                path + " is not valid UTF-8 and old_str is right next to bytes that are "
                "not UTF-8 (perhaps part of a character in another encoding); include "
                "more context, or edit it with bash_tool"
            )
        note = " (the file is not valid UTF-8; its other bytes were kept as they were)"
    out = (text[:at] + new + text[at + len(old) :]).encode("utf-8", "surrogateescape")
    _write(path, out, mode)
    reply = _written("Replaced 1 occurrence in", path, len(out))
    reply["output"] += note
    return reply


# -- the Docker helper's entry point -------------------------------------------


def main() -> None:
    r"""Read one ``<length>\\n<json>`` request from stdin; write the JSON reply to stdout."""
    size = int(sys.stdin.buffer.readline())
    request = json.loads(sys.stdin.buffer.read(size).decode("utf-8"))
    sys.stdout.write(json.dumps(serve(request)))


if __name__ == "__main__":
    main()
