"""Execution backends: where a tool call runs.

=================  ==========================================================
``LocalBackend``   the skill tools on the host (optionally under bubblewrap)
``DockerBackend``  the skill tools inside a sandbox container (``[docker]``)
``AnthropicBackend``  Anthropic-managed code execution containers with skills
``NativeBackend``  skills written as async Python callables
=================  ==========================================================

``EgressPolicy`` (also ``conjure_async.EgressPolicy``) gives the Docker and
bubblewrap sandboxes an allow-list of destinations instead of no network.

Every backend subclasses :class:`Backend`; see its docstring for the contract.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._public import publish
from conjure_async.backends._base import (
    Backend,
    BackendContext,
    ToolCall,
    ToolChunk,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from conjure_async.backends._local import LocalBackend
from conjure_async.egress._policy import EgressPolicy

if TYPE_CHECKING:
    from conjure_async.backends._hosted import AnthropicBackend, AnthropicSkill
    from conjure_async.backends._native import NativeBackend
    from conjure_async.backends._native_skill import NativeSkill
    from conjure_async.backends._native_tool import NativeTool, tool
    from conjure_async.backends.docker._backend import DockerBackend
    from conjure_async.backends.docker._image import build_image, build_offline_image
    from conjure_async.backends.docker._pool import WarmPool
    from conjure_async.backends.docker._sweep import sweep_orphans

__all__ = [
    "AnthropicBackend",
    "AnthropicSkill",
    "Backend",
    "BackendContext",
    "DockerBackend",
    "EgressPolicy",
    "LocalBackend",
    "NativeBackend",
    "NativeSkill",
    "NativeTool",
    "ToolCall",
    "ToolChunk",
    "ToolContext",
    "ToolEvent",
    "ToolResult",
    "WarmPool",
    "build_image",
    "build_offline_image",
    "sweep_orphans",
    "tool",
]

# One line per name, from the module defining it, imported on first use so that
# optional dependencies (aiodocker) load only when that backend is used.
_LAZY = {
    "DockerBackend": "conjure_async.backends.docker._backend",
    "WarmPool": "conjure_async.backends.docker._pool",
    "build_image": "conjure_async.backends.docker._image",
    "build_offline_image": "conjure_async.backends.docker._image",
    "sweep_orphans": "conjure_async.backends.docker._sweep",
    "AnthropicBackend": "conjure_async.backends._hosted",
    "AnthropicSkill": "conjure_async.backends._hosted",
    "NativeBackend": "conjure_async.backends._native",
    "NativeSkill": "conjure_async.backends._native_skill",
    "NativeTool": "conjure_async.backends._native_tool",
    "tool": "conjure_async.backends._native_tool",
}


publish(__name__, {name: globals()[name] for name in __all__ if name in globals()})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    obj = getattr(importlib.import_module(module), name)
    publish(__name__, {name: obj})
    return obj
