"""Skills taken from an MCP server: listed, verified and written to disk.

The server publishes skills through the Skills extension
(``io.modelcontextprotocol/skills``): ``skills/list`` gives, for each skill,
the URI of its ``SKILL.md``, its frontmatter and the complete manifest of its
files (URI, ``sha256:`` digest, size). :func:`fetch_served_skills` reads every
file of every listed skill with ``resources/read`` and checks it before
anything touches the disk:

* every URI is a ``skill://`` URI whose segments are plain names (no ``..``,
  no ``.``, no empty segment, no backslash, no control character, no user,
  port, query or fragment; other schemes are refused);
* each file lies under its skill's directory, once; ``SKILL.md`` is listed;
* sizes and ``sha256`` digests match the manifest; the manifest stays within
  the extension's limits (512 files, 16 MiB per skill); a ``"dynamic"``
  manifest (no digests) is refused;
* the ``SKILL.md`` frontmatter equals the listed one and its ``name`` is the
  last segment of the skill's path.

Any failure raises :class:`~conjure_async.McpError` naming the server (its
host-assigned label and command or URL), the skill and the file; the caller
removes the whole directory, so nothing half-written is left.

Files are written at ``<root>/<sha256(label, command or URL)[:16]>-<label>/<URI
path>``: the path encodes the server's identity as well as the URI, so
same-URI skills of two servers land apart and the origin can be read off the
path. A served skill is named ``<label>.<name>`` (a dot never appears in an
Agent Skills name, so it cannot shadow a local skill), and its description
starts with the server it came from; its ``allowed-tools`` are not honoured.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conjure_async._exceptions import McpError, SkillError
from conjure_async.skills import Skill, load_skill, parse_skill_md

try:
    from mcp.shared.exceptions import MCPError
    from mcp_types import Request, RequestParams, Result
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from conjure_async._exceptions import MissingDependencyError

    raise MissingDependencyError("mcp", "mcp") from exc

if TYPE_CHECKING:
    from mcp import ClientSession

    from conjure_async.mcp._backend import McpBackend

__all__ = [
    "MAX_SKILL_BYTES",
    "MAX_SKILL_FILES",
    "fetch_served_skills",
    "server_directory",
    "uri_segments",
]

SKILLS_EXTENSION = "io.modelcontextprotocol/skills"
"""The Skills extension's identifier."""
MAX_SKILL_FILES = 512
"""Files per skill the extension guarantees (``SKILL.md`` included)."""
MAX_SKILL_BYTES = 16 * 1024 * 1024
"""Total bytes per skill the extension guarantees."""
_MAX_PAGES = 100
_MAX_SEGMENT = 255
# A segment of a skill's own path goes into directory names and (Docker) mount
# specifications, so it is kept to URI-unreserved characters; file paths below
# the skill's root only need to be safe file names.
_SKILL_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_DIGEST = r"sha256:[0-9a-f]{64}"
_METHOD_NOT_FOUND = -32601
_NO_EXTENSION = f"does not serve skills (no Skills extension, {SKILLS_EXTENSION})"


class _ListParams(RequestParams):
    cursor: str | None = None


class _SkillsList(Request[_ListParams | None, Literal["skills/list"]]):
    method: Literal["skills/list"] = "skills/list"
    params: _ListParams | None = None


class _ListResult(Result):
    model_config = ConfigDict(extra="allow")
    skills: list[dict[str, Any]] = Field(default_factory=list)
    next_cursor: str | None = Field(default=None, alias="nextCursor")


class _FileEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    uri: str
    digest: str = Field(pattern=_DIGEST)
    size: int = Field(ge=0)


class _SkillEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    uri: str
    frontmatter: dict[str, Any]
    resources: list[_FileEntry] | Literal["dynamic"]


def check_label(label: str) -> str:
    """Return ``label`` if it can name a server's skills (``[a-z0-9-]``, up to 40)."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ValueError(
            f"a server label is 1-40 lowercase letters, digits and hyphens, not {label!r}"
        )
    return label


def uri_segments(uri: str) -> tuple[str, ...]:
    """The path of a ``skill://`` URI as decoded segments (authority first).

    Raises:
        ValueError: The URI is not a ``skill://`` URI, carries a user, port,
            query or fragment, or has a segment that is empty, ``.``, ``..``,
            holds a slash, a backslash or a control character, or is too long.
    """
    if not isinstance(uri, str) or _CONTROL.search(uri) or " " in uri:
        raise ValueError("holds a space or a control character")
    parts = urlsplit(uri)
    if parts.scheme != "skill":
        raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not skill://")
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise ValueError("has a query or fragment")
    if not parts.netloc:
        raise ValueError("has no skill path after skill:// (an absolute path)")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError("has a user or a port in its authority")
    raw = [parts.netloc, *parts.path.split("/")[1:]]
    segments = tuple(unquote(s, errors="strict") for s in raw)
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"has a {segment or 'empty'!r} segment")
        if "/" in segment or "\\" in segment or _CONTROL.search(segment):
            raise ValueError(f"segment {segment!r} holds a slash, backslash or control character")
        if len(segment.encode("utf-8", "surrogateescape")) > _MAX_SEGMENT:
            raise ValueError("has a segment longer than 255 bytes")
    return segments


def server_directory(root: Path, label: str, target: str) -> Path:
    """Where one server's skills are written: its identity (label and target) in the name."""
    identity = hashlib.sha256(f"{label}\n{target}".encode()).hexdigest()[:16]
    return root / f"{identity}-{label}"


class _RefusedError(Exception):
    """A served skill that cannot be used (becomes an McpError naming the server)."""


async def fetch_served_skills(server: McpBackend, label: str, root: Path) -> list[Skill]:
    """Every skill ``server`` lists, verified and written under ``root``; named per origin.

    ``server`` must be connected.

    Raises:
        McpError: The server does not declare the Skills extension, does not
            answer, or serves a skill that fails verification (the message
            names the server, the skill and the file).
    """
    session = server._client()
    capabilities = server._capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    # ``extensions`` exists from protocol 2026-07-28 on; the 2025-11-25 handshake
    # drops it, so there a server without the extension is told by skills/list.
    if extensions is not None and SKILLS_EXTENSION not in extensions:
        raise McpError(f"(labelled {label!r}) {_NO_EXTENSION}", target=server.target)
    try:
        entries = await _list(server, session, label)
    except McpError as exc:
        if exc.code != _METHOD_NOT_FOUND:
            raise
        raise McpError(f"(labelled {label!r}) {_NO_EXTENSION}", target=server.target) from exc
    names = _served_names(entries, label, server.target)
    directory = server_directory(root, label, server.target)
    skills: list[Skill] = []
    for entry, name in zip(entries, names, strict=True):
        try:
            skill_path, files = await _verified_files(server, session, entry)
            skill_dir = directory.joinpath(*skill_path)
            await anyio.to_thread.run_sync(functools.partial(_write, directory, skill_dir, files))
            loaded = await anyio.to_thread.run_sync(load_skill, skill_dir)
        except (_RefusedError, SkillError) as exc:
            raise McpError(
                f"(labelled {label!r}) skill {entry.uri}: {exc}; the skill is refused",
                target=server.target,
            ) from exc
        skills.append(
            loaded.model_copy(
                update={
                    "name": name,
                    "description": f"[from MCP server {label!r}] {loaded.description}",
                    "allowed_tools": [],  # a served skill grants itself nothing
                }
            )
        )
    return skills


async def _request(server: McpBackend, what: str, call: Any) -> Any:
    try:
        with anyio.fail_after(server.connect_timeout):
            return await call
    except TimeoutError as exc:
        raise McpError(
            f"no answer to {what} within {server.connect_timeout:g}s", target=server.target
        ) from exc
    except MCPError as exc:
        raise McpError(
            f"{what} failed: {exc.error.message} (JSON-RPC error {exc.error.code})",
            target=server.target,
            code=exc.error.code,
        ) from exc


async def _list(server: McpBackend, session: ClientSession, label: str) -> list[_SkillEntry]:
    entries: list[_SkillEntry] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        request = _SkillsList(params=_ListParams(cursor=cursor) if cursor else None)
        page = await _request(server, "skills/list", session.send_request(request, _ListResult))
        for raw in page.skills:
            try:
                entries.append(_SkillEntry.model_validate(raw))
            except ValidationError as exc:
                shown = str(raw.get("uri", "?")) if isinstance(raw, dict) else "?"
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                raise McpError(
                    f"(labelled {label!r}) skills/list entry {shown!r} is invalid: {where}: "
                    f"{problem['msg']}",
                    target=server.target,
                ) from None
        cursor = page.next_cursor
        if not cursor:
            return entries
    raise McpError(
        f"(labelled {label!r}) skills/list has over {_MAX_PAGES} pages", target=server.target
    )


def _served_names(entries: Sequence[_SkillEntry], label: str, target: str) -> list[str]:
    """``label.name``; where two entries share a name, ``label.<path segments>``."""
    plain = [f"{label}.{e.frontmatter.get('name')}" for e in entries]
    names: list[str] = []
    for entry, first in zip(entries, plain, strict=True):
        name = first
        if plain.count(first) > 1:
            try:
                path = uri_segments(entry.uri)[:-1]
            except ValueError as exc:
                raise McpError(
                    f"(labelled {label!r}) skill URI {entry.uri!r} {exc}", target=target
                ) from None
            name = label + "." + ".".join(re.sub(r"[^a-z0-9-]+", "-", s.lower()) for s in path)
        if name in names:
            raise McpError(
                f"(labelled {label!r}) lists two skills that cannot be told apart ({name})",
                target=target,
            )
        names.append(name)
    return names


async def _verified_files(
    server: McpBackend, session: ClientSession, entry: _SkillEntry
) -> tuple[tuple[str, ...], dict[tuple[str, ...], bytes]]:
    """The skill's path and its files (path below the skill → bytes), all verified."""
    try:
        segments = uri_segments(entry.uri)
    except ValueError as exc:
        raise _RefusedError(f"its URI {exc}") from None
    if segments[-1] != "SKILL.md" or len(segments) < 2:
        raise _RefusedError("its URI does not end in <skill-path>/SKILL.md")
    skill_path = segments[:-1]
    for segment in skill_path:
        if not _SKILL_SEGMENT.fullmatch(segment):
            raise _RefusedError(f"skill path segment {segment!r} is not a plain name")
    if entry.frontmatter.get("name") != skill_path[-1]:
        raise _RefusedError("the frontmatter name is not the last segment of its path")
    if entry.resources == "dynamic":
        raise _RefusedError(
            "its files are 'dynamic' (no digests to verify); only skills with a manifest load"
        )
    manifest = entry.resources
    if len(manifest) > MAX_SKILL_FILES or sum(f.size for f in manifest) > MAX_SKILL_BYTES:
        raise _RefusedError(
            f"its {len(manifest)} files exceed the extension's limits "
            f"({MAX_SKILL_FILES} files, {MAX_SKILL_BYTES} bytes)"
        )
    wanted: dict[tuple[str, ...], _FileEntry] = {}
    for item in manifest:
        try:
            file_segments = uri_segments(item.uri)
        except ValueError as exc:
            raise _RefusedError(f"file {item.uri!r}: its URI {exc}") from None
        relative = file_segments[len(skill_path) :]
        if file_segments[: len(skill_path)] != skill_path or not relative:
            raise _RefusedError(f"file {item.uri!r} is outside the skill's directory")
        if relative in wanted:
            raise _RefusedError(f"file {item.uri!r} is listed twice")
        wanted[relative] = item
    if ("SKILL.md",) not in wanted:
        raise _RefusedError("its manifest does not list SKILL.md")
    folders = {rel[:i] for rel in wanted for i in range(1, len(rel))}
    clash = next((rel for rel in wanted if rel in folders), None)
    if clash is not None:
        raise _RefusedError(f"{'/'.join(clash)} is listed both as a file and as a folder")
    files: dict[tuple[str, ...], bytes] = {}
    for relative, item in wanted.items():
        data = await _read(server, session, item.uri)
        if len(data) != item.size:
            raise _RefusedError(
                f"file {item.uri}: {len(data)} bytes served, the manifest says {item.size}"
            )
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != item.digest:
            raise _RefusedError(
                f"file {item.uri}: digest mismatch (the manifest says {item.digest}, "
                f"the served bytes hash to {digest})"
            )
        files[relative] = data
    _check_frontmatter(files[("SKILL.md",)], entry)
    return skill_path, files


async def _read(server: McpBackend, session: ClientSession, uri: str) -> bytes:
    result = await _request(server, f"resources/read {uri}", session.read_resource(uri))
    contents = [c for c in getattr(result, "contents", ()) if str(c.uri) == uri]
    if len(contents) != 1:
        raise _RefusedError(f"file {uri}: the server answered with {len(contents)} contents for it")
    (content,) = contents
    text = getattr(content, "text", None)
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(str(getattr(content, "blob", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _RefusedError(f"file {uri}: the blob is not valid base64") from None


def _check_frontmatter(data: bytes, entry: _SkillEntry) -> None:
    try:
        frontmatter, _, _ = parse_skill_md(data.decode("utf-8"), entry.uri)
    except (UnicodeDecodeError, SkillError) as exc:
        raise _RefusedError(f"its SKILL.md cannot be read: {exc}") from None
    if _normal(frontmatter) != _normal(entry.frontmatter):
        raise _RefusedError("the frontmatter of its SKILL.md differs from the one listed")


def _normal(value: Any) -> Any:
    """A JSON round trip: YAML dates and the like compare as the JSON a server sends."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _write(directory: Path, skill_dir: Path, files: dict[tuple[str, ...], bytes]) -> None:
    """Write verified files below ``skill_dir``, never outside ``directory``.

    A file already written (a nested skill's, listed by its parent too) must
    hold the same bytes.
    """
    directory.mkdir(mode=0o755, exist_ok=True)
    base = directory.resolve()
    for relative, data in files.items():
        target = skill_dir.joinpath(*relative)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not target.parent.resolve().is_relative_to(base):
            raise _RefusedError(f"{'/'.join(relative)} would be written outside its directory")
        try:
            with target.open("xb") as fh:
                fh.write(data)
        except FileExistsError:
            if target.is_symlink() or not target.is_file() or target.read_bytes() != data:
                raise _RefusedError(
                    f"{'/'.join(relative)} was already written with other bytes "
                    "(two skills of the server disagree about it)"
                ) from None
        target.chmod(0o644)
