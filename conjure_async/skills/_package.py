"""Safe extraction of ``.skill`` packages (zip archives) into a content-addressed cache.

A package holds ``SKILL.md`` either at the archive root or inside exactly one
top folder. It is extracted once into ``<cache>/<sha256 of the zip>/<skill>/``:
entries go to a temporary directory beside the target, which is renamed into
place only when every check passed, so a refused or interrupted extraction
leaves nothing behind.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from conjure_async._exceptions import SkillPackageError, SkillParseError
from conjure_async.skills._model import SKILL_FILE
from conjure_async.skills._parse import MAX_FRONTMATTER_SIZE, parse_skill_md
from conjure_async.skills._text import quote

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_TOTAL_SIZE",
    "PACKAGE_SUFFIX",
    "default_cache_dir",
    "extract_skill_package",
]

PACKAGE_SUFFIX = ".skill"
DEFAULT_MAX_TOTAL_SIZE = 50 * 1024 * 1024
"""Largest total uncompressed size of a package (50 MB)."""
DEFAULT_MAX_FILES = 2000
"""Most entries (files and directories alike) a package may hold."""

_CHUNK = 1 << 16
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_NAME_BYTES = 255
# Characters no file or directory name made from a package may hold: control
# characters (newline, tab, escape, DEL, C1 such as NEL) and the Unicode line
# and paragraph separators, which all break listings, prompts and logs.
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def default_cache_dir() -> Path:
    """Return where packages are extracted unless told otherwise.

    ``$CONJURE_CACHE_DIR/packages`` when ``CONJURE_CACHE_DIR`` is set, else
    ``$XDG_CACHE_HOME/conjure_async/packages`` (``~/.cache`` by default).
    """
    configured = os.environ.get("CONJURE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser() / "packages"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "conjure_async" / "packages"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _has_control_character(name: str) -> bool:
    return any(unicodedata.category(ch) in _LINE_BREAKING for ch in name)


def _safe_parts(name: str, package: str) -> tuple[str, ...]:
    """Return the path components of an entry name, refusing anything unsafe."""
    shown = quote(name, 200)
    if "\\" in name:
        raise SkillPackageError(package, f"entry {shown} contains a backslash; refused")
    if "\x00" in name:
        raise SkillPackageError(package, f"entry {shown} contains a NUL byte; refused")
    if _has_control_character(name):
        raise SkillPackageError(package, f"entry {shown} contains a control character; refused")
    if name.startswith("/"):
        raise SkillPackageError(package, f"entry {shown} is an absolute path; refused")
    if _DRIVE.match(name):
        raise SkillPackageError(package, f"entry {shown} has a drive letter; refused")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise SkillPackageError(package, f"entry {shown} contains '..'; refused")
    if not parts:
        raise SkillPackageError(package, f"entry {shown} has an empty path; refused")
    return parts


def _directory_name(name: str, source: str, package: str) -> str:
    """Return ``name`` if it can name the extracted skill directory, else refuse the package.

    Args:
        name: The candidate (the frontmatter ``name`` or the zip's stem).
        source: Where it comes from, for the message.
        package: The package, for the message.
    """
    problem = None
    if name in {"", ".", ".."}:
        problem = "is empty or a relative path"
    elif any(ch in name for ch in "/\\\x00:"):
        problem = "contains a path separator, ':' or NUL"
    elif _has_control_character(name):
        problem = "contains a control character"
    elif len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        problem = f"is longer than {_MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise SkillPackageError(
            package,
            f"{source} {quote(name, 100)} cannot be used as a directory name ({problem}); refused",
        )
    return name


def _check_entries(
    infos: list[zipfile.ZipInfo], package: str, max_total_size: int, max_files: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    # Every entry counts, directories too: 50,000 empty directory entries cost
    # as much to create as 50,000 files.
    if len(infos) > max_files:
        raise SkillPackageError(
            package, f"holds {len(infos)} entries, more than the limit {max_files}"
        )
    seen: set[tuple[str, ...]] = set()
    checked: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    declared = 0
    for info in infos:
        parts = _safe_parts(info.filename, package)
        shown = quote(info.filename, 200)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise SkillPackageError(package, f"entry {shown} is a symlink; refused")
        if info.flag_bits & 0x1:
            raise SkillPackageError(package, f"entry {shown} is encrypted; refused")
        if parts in seen:
            raise SkillPackageError(package, f"entry {shown} appears more than once; refused")
        seen.add(parts)
        if not info.is_dir():
            declared += info.file_size
        checked.append((info, parts))
    if declared > max_total_size:
        raise SkillPackageError(
            package,
            f"declares {declared} bytes uncompressed, more than the limit {max_total_size}",
        )
    return checked


def _layout(
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], package: str
) -> tuple[int, str | None]:
    """Return ``(components to strip, top folder)`` for the package layout."""
    names = {parts for info, parts in entries if not info.is_dir()}
    if (SKILL_FILE,) in names:
        return 0, None
    tops = {parts[0] for _, parts in entries}
    if len(tops) == 1:
        (top,) = tops
        if (top, SKILL_FILE) in names:
            return 1, top
    raise SkillPackageError(
        package, "SKILL.md must be at the package root or inside exactly one top folder"
    )


def _dir_name_from_frontmatter(archive: zipfile.ZipFile, fallback: str, package: str) -> str:
    """Return the directory name for a package whose ``SKILL.md`` is at the root.

    The frontmatter ``name`` when there is one, else the zip's stem; either is
    refused (:class:`SkillPackageError`) when it cannot safely name a
    directory (control characters, path syntax, too long). A name that is
    invalid but harmless (``PDF-Tool``) is kept, so loading reports it.
    """
    name: object = None
    # Enough bytes for any frontmatter within its limit (4 bytes a character);
    # a file cut mid-character or mid-frontmatter just has no usable name here.
    budget = 4 * MAX_FRONTMATTER_SIZE + 1024
    try:
        with archive.open(SKILL_FILE) as fh:
            raw = fh.read(budget)
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
        name = parse_skill_md(text, SKILL_FILE)[0].get("name")
    except (UnicodeDecodeError, SkillParseError, KeyError, OSError, zipfile.BadZipFile):
        pass
    except (zlib.error, EOFError, NotImplementedError):
        pass  # a corrupt entry: reported when it is extracted
    if isinstance(name, str):
        return _directory_name(name, "SKILL.md name", package)
    return _directory_name(fallback, "package file name", package)


def _extract_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    dest: Path,
    package: str,
    budget: int,
) -> int:
    """Copy one entry to ``dest`` in chunks; return the bytes written."""
    written = 0
    with archive.open(info) as src, dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise SkillPackageError(
                    package,
                    f"entry {info.filename!r} is larger than its declared size "
                    f"{info.file_size}; refused",
                )
            if written > budget:
                raise SkillPackageError(
                    package, "uncompressed content exceeds the total size limit; refused"
                )
            out.write(chunk)
    mode = (info.external_attr >> 16) & 0o777
    dest.chmod(0o755 if mode & 0o111 else 0o644)
    return written


def extract_skill_package(
    package: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    max_files: int = DEFAULT_MAX_FILES,
) -> Path:
    """Extract a ``.skill`` package safely and return the extracted skill directory.

    The archive is extracted at most once per content: into
    ``<cache_dir>/<sha256>/<skill-name>/``. The skill directory is named after
    the top folder of the archive, or, when ``SKILL.md`` sits at the archive
    root, after the frontmatter ``name`` (the zip's stem when that name is
    unusable as a directory name).

    Refused, each with a :class:`SkillPackageError` naming the reason: files
    that are not zip archives, absolute paths, ``..`` components, drive
    letters and backslashes, names with control characters (newline, tab,
    escape...) or Unicode line separators, symlink entries, encrypted entries,
    duplicate names, more than ``max_files`` entries (directories count too),
    more than ``max_total_size`` bytes uncompressed (declared or actually
    read), an entry larger than its declared size, archives without
    ``SKILL.md`` at the root or in exactly one top folder, and a root
    ``SKILL.md`` whose ``name`` (or, without one, the zip's stem) cannot name
    a directory. Nothing is left partly extracted.

    Args:
        package: The ``.skill`` (zip) file.
        cache_dir: Where to extract; defaults to :func:`default_cache_dir`.
        max_total_size: Limit on the total uncompressed size, in bytes.
        max_files: Limit on the number of entries, files and directories.

    Returns:
        The extracted skill directory (it contains ``SKILL.md``).

    Raises:
        SkillPackageError: The package is unsafe, malformed or unreadable.
    """
    source = Path(package)
    label = str(source)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        key = _sha256_file(source)
    except OSError as exc:
        raise SkillPackageError(label, f"cannot read: {exc.strerror or exc}") from exc
    final = cache / key
    existing = _find_skill_dir(final)
    if existing is not None:
        return existing
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=cache))
    except OSError as exc:
        raise SkillPackageError(label, f"cannot create cache directory {cache}: {exc}") from exc
    try:
        _extract_into(source, label, staging, max_total_size, max_files)
        try:
            staging.rename(final)
        except OSError:
            # Another process extracted the same package first: use its copy.
            if _find_skill_dir(final) is None:
                raise
    except OSError as exc:
        raise SkillPackageError(label, f"cannot extract: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    found = _find_skill_dir(final)
    if found is None:  # pragma: no cover - the rename above put it there
        raise SkillPackageError(label, "extraction did not produce a skill directory")
    return found


def _find_skill_dir(root: Path) -> Path | None:
    with contextlib.suppress(OSError):
        for child in sorted(root.iterdir()):
            if (child / SKILL_FILE).is_file():
                return child
    return None


def _extract_into(
    source: Path, label: str, staging: Path, max_total_size: int, max_files: int
) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise SkillPackageError(label, "not a zip archive") from exc
    with archive:
        entries = _check_entries(archive.infolist(), label, max_total_size, max_files)
        strip, top = _layout(entries, label)
        dir_name = (
            top if top is not None else _dir_name_from_frontmatter(archive, source.stem, label)
        )
        skill_dir = staging / dir_name
        skill_dir.mkdir()
        budget = max_total_size
        for info, parts in entries:
            rel = parts[strip:]
            if not rel:
                continue
            dest = skill_dir.joinpath(*rel)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                budget -= _extract_entry(archive, info, dest, label, budget)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise SkillPackageError(
                    label, f"entry {info.filename!r} is corrupt: {exc}"
                ) from exc
