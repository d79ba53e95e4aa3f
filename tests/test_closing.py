"""Closeable objects share one base: ``async with`` closes them with ``aclose()`` (as anyio's)."""

from __future__ import annotations

import importlib

import pytest

from conjure_async._closing import AsyncCloseable

PUBLIC_PACKAGES = [
    "conjure_async",
    "conjure_async.anthropic",
    "conjure_async.backends",
    "conjure_async.models",
    "conjure_async.skills",
    "conjure_async.testing",
]

OWN_LIFECYCLE = {"Session"}
"""Async context managers whose ``async with`` is more than closing: the session opens its
backends in a task group held across the block (and its module is another change's)."""


def _async_context_managers() -> dict[str, type]:
    found = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and hasattr(obj, "__aexit__"):
                found[name] = obj
    return found


def test_the_scan_finds_the_closeable_classes() -> None:
    """The public async context managers are found (so the check below can fail)."""
    assert {"AnthropicAPI", "FakeAnthropicServer", "Session", "WarmPool"} <= set(
        _async_context_managers()
    )


@pytest.mark.parametrize(
    "name", sorted(set(_async_context_managers()) - OWN_LIFECYCLE), ids=lambda name: name
)
def test_every_closeable_gets_its_exit_from_the_one_base(name: str) -> None:
    """Its ``__aexit__`` is ``AsyncCloseable``'s (none written again), so it has ``aclose``."""
    cls = _async_context_managers()[name]
    assert issubclass(cls, AsyncCloseable)
    assert cls.__aexit__ is AsyncCloseable.__aexit__
    assert "aclose" in {attr for klass in cls.__mro__ for attr in vars(klass)}
