"""A session's names checked once: each tool served by one backend, each skill offered once."""

from __future__ import annotations

from collections.abc import Sequence

from conjure_async._exceptions import SkillConflictError, ToolConflictError
from conjure_async.backends._base import Backend
from conjure_async.messages import ToolDefinition

__all__ = ["check_skill_names", "tool_routes"]


def tool_routes(backends: Sequence[Backend]) -> dict[str, tuple[Backend, ToolDefinition]]:
    """Each tool name's backend and definition; two backends offering one name is an error.

    Raises:
        ToolConflictError: Two backends offer a tool of the same name.
    """
    routes: dict[str, tuple[Backend, ToolDefinition]] = {}
    for backend in backends:
        for definition in backend.tools():
            other = routes.get(definition.name)
            if other is not None:
                raise ToolConflictError(
                    f"tool {definition.name!r} is offered by both "
                    f"{type(other[0]).__name__} ({other[0].kind}) and "
                    f"{type(backend).__name__} ({backend.kind})"
                )
            routes[definition.name] = (backend, definition)
    return routes


def check_skill_names(backends: Sequence[Backend]) -> None:
    """Refuse two skills of one name: the model could not tell them apart.

    Raises:
        SkillConflictError: One backend offers a skill twice, or two offer one name.
    """
    owners: dict[str, Backend] = {}
    for backend in backends:
        for listing in backend.skill_listings():
            other = owners.get(listing.name)
            if other is backend:
                raise SkillConflictError(
                    f"skill {listing.name!r} is offered twice by "
                    f"{type(backend).__name__} ({backend.kind})"
                )
            if other is not None:
                raise SkillConflictError(
                    f"skill {listing.name!r} is offered by both "
                    f"{type(other).__name__} ({other.kind}) and "
                    f"{type(backend).__name__} ({backend.kind}); rename one"
                )
            owners[listing.name] = backend
