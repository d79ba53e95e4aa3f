"""Public names read as their public path: ``conjure_async.Session``, not ``..._session``.

Each public package's ``__init__`` calls :func:`publish` on what it exports
(as anyio does), so reprs, tracebacks, pickles and docs show the name a user
imports. A name is claimed by the public package nearest to the module that
defines it: ``ToolCall`` lives in ``conjure_async.backends._base``, so it is
``conjure_async.backends.ToolCall`` even though ``conjure_async`` re-exports it.
A package that exports nothing does not claim: ``DockerBackend`` lives in
``conjure_async.backends.docker._backend``, and ``conjure_async.backends.docker``
(the backend's implementation, ``__all__ = []``) leaves it to
``conjure_async.backends``.
Names a package loads lazily are published when first loaded (through the
package's ``__getattr__``).
"""

from __future__ import annotations

import sys
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
            and _claims(package, home, name)
            and getattr(obj, "__name__", None) == name
            and (isinstance(obj, type) or callable(obj))
        ):
            obj.__module__ = package


def _claims(package: str, module: str, name: str) -> bool:
    """Whether ``package`` is the nearest public package exporting ``name`` from ``module``.

    ``module`` must be private (a public module is already the public path)
    and inside ``package``; no public package between the two may export
    ``name`` (that one is nearer, and claims it).
    """
    home = public_home(module)
    if home == module or (home != package and not home.startswith(f"{package}.")):
        return False
    parts = home.split(".")
    between = (".".join(parts[:depth]) for depth in range(package.count(".") + 2, len(parts) + 1))
    return not any(name in getattr(sys.modules.get(sub), "__all__", ()) for sub in between)
