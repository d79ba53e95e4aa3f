"""Public names read as their public path: ``conjure_async.Session``, not ``..._session``.

Each public package's ``__init__`` calls :func:`publish` on what it exports
(as anyio does), so reprs, tracebacks, pickles and docs show the name a user
imports. A name is claimed by the public package nearest to the module that
defines it: ``ToolCall`` lives in ``conjure_async.backends._base``, so it is
``conjure_async.backends.ToolCall`` even though ``conjure_async`` re-exports it.
Names a package loads lazily are published when first loaded (through the
package's ``__getattr__``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["public_home", "publish"]


def public_home(module: str) -> str:
    """The public package a module belongs to: its path up to the first private part."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:index])
    return module


def publish(package: str, names: Mapping[str, object]) -> None:
    """Set ``__module__`` to ``package`` on the exported classes and functions it is home to.

    Args:
        package: The public package (its ``__name__``).
        names: What it exports, by name (its namespace, or the lazily loaded names).
    """
    for name, obj in names.items():
        home = getattr(obj, "__module__", None)
        if (
            isinstance(home, str)
            and home != package
            and public_home(home) == package
            and getattr(obj, "__name__", None) == name
            and (isinstance(obj, type) or callable(obj))
        ):
            obj.__module__ = package
