"""Typed views of Skills and Files API objects, read from the beta or the post-GA shape.

The Skills and Files APIs left beta on 2026-08-19. Requests that still send
the beta headers get the old shapes; requests without them get new ones
(``display_name`` for ``display_title``, ``latest_version_id``, ``source`` as
an object, versions addressed by id, ``next_page`` cursors for files). These
models accept both and expose one set of attribute names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conjure_async._exceptions import APIError
from conjure_async._redact import DEFAULT_REDACTOR, validation_summary

__all__ = ["Deleted", "FileInfo", "Page", "SkillInfo", "SkillVersionInfo", "parse_as"]

T = TypeVar("T")


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    raw: dict[str, Any] = Field(default_factory=dict, repr=False)
    """The object exactly as the API returned it."""


class SkillInfo(_View):
    """A skill (``/v1/skills/{id}``)."""

    id: str
    """The skill id (``skill_01...``; pre-built skills use their short name)."""
    display_title: str | None = None
    """Its title (``display_title`` in the beta shape, ``display_name`` after GA)."""
    latest_version: str | None = None
    """The latest version: the epoch-microseconds string in the beta shape,
    the version id after GA."""
    source: str = "custom"
    """``custom``, ``anthropic`` (or after GA ``anthropic_example``, ``plugin``)."""
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SkillInfo:
        """Read either shape."""
        source = data.get("source")
        if isinstance(source, Mapping):
            source = source.get("type")
        return cls(
            id=data["id"],
            display_title=data.get("display_title", data.get("display_name")),
            latest_version=data.get("latest_version", data.get("latest_version_id")),
            source=source or "custom",
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            raw=dict(data),
        )


class SkillVersionInfo(_View):
    """A version of a skill (``/v1/skills/{id}/versions/{version}``)."""

    id: str
    skill_id: str
    version: str
    """How to address this version: its epoch-microseconds ``version`` in the
    beta shape, its ``id`` after GA."""
    name: str = ""
    """The ``name`` from its SKILL.md."""
    description: str = ""
    directory: str | None = None
    """Its top-level folder (beta shape only)."""
    created_at: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SkillVersionInfo:
        """Read either shape."""
        return cls(
            id=data["id"],
            skill_id=data.get("skill_id", ""),
            version=str(data.get("version") or data["id"]),
            name=data.get("name") or "",
            description=data.get("description") or "",
            directory=data.get("directory"),
            created_at=data.get("created_at"),
            raw=dict(data),
        )


class FileInfo(_View):
    """File metadata (``/v1/files/{id}``)."""

    id: str
    filename: str = ""
    mime_type: str | None = None
    size_bytes: int | None = None
    created_at: str | None = None
    downloadable: bool | None = None
    """Only files created by code execution or skills can be downloaded."""
    expires_at: str | None = None
    """After GA, when the file expires (if it does)."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> FileInfo:
        """Read either shape."""
        return cls(
            id=data["id"],
            filename=data.get("filename") or "",
            mime_type=data.get("mime_type"),
            size_bytes=data.get("size_bytes"),
            created_at=data.get("created_at"),
            downloadable=data.get("downloadable"),
            expires_at=data.get("expires_at"),
            raw=dict(data),
        )


class Deleted(_View):
    """The answer to a delete (``skill_deleted``, ``skill_version_deleted``, ``file_deleted``)."""

    id: str
    type: str = ""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Deleted:
        """Read the delete confirmation."""
        return cls(id=str(data["id"]), type=data.get("type") or "", raw=dict(data))


class Page(BaseModel, Generic[T]):
    """One page of a list; pass :attr:`next_page` back to get the next one."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data: list[T]
    """The items of this page."""
    next_page: str | None = None
    """The cursor of the next page, ``None`` on the last one."""


def parse_as(
    factory: Callable[[Mapping[str, Any]], T], data: Any, what: str, request_id: str | None
) -> T:
    """Build a view from JSON, turning a wrong shape into a clear :class:`APIError`."""
    if not isinstance(data, Mapping):
        raise APIError(
            f"{what}: unexpected response: expected an object, got {type(data).__name__}",
            request_id=request_id,
        )
    with DEFAULT_REDACTOR.guard():
        try:
            return factory(data)
        except (KeyError, TypeError, ValidationError) as exc:
            raise APIError(
                f"{what}: unexpected response shape "
                f"({type(exc).__name__}: {validation_summary(exc)})",
                request_id=request_id,
            ) from exc
