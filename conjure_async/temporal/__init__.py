"""Durable sessions on Temporal: conversations that outlive their workers.

Needs the ``temporal`` extra (``pip install 'conjure-async[temporal]'``).
A :class:`DurableSession` is a handle on a Temporal workflow that drives the
same turn engine as :class:`~conjure_async.Session`; model calls and tool
calls are activities run by workers started with :func:`conjure_worker`.
See ``docs/durable.md``.
"""

from __future__ import annotations

try:
    import temporalio  # noqa: F401 - checked here so the error names the extra
except ImportError as exc:  # pragma: no cover - depends on the install
    from conjure_async._exceptions import MissingDependencyError

    raise MissingDependencyError("temporalio", "temporal") from exc

from conjure_async._public import publish
from conjure_async.temporal._activities import BackendFactory
from conjure_async.temporal._claim_check import (
    BlobError,
    BlobStore,
    ClaimCheckCodec,
    FileBlobStore,
    claim_check_converter,
)
from conjure_async.temporal._client import DurableSession
from conjure_async.temporal._liveness import session_alive
from conjure_async.temporal._spec import BackendSpec, DurableConfig
from conjure_async.temporal._worker import conjure_worker
from conjure_async.temporal._workflow import SessionWorkflow

__all__ = [
    "BackendFactory",
    "BackendSpec",
    "BlobError",
    "BlobStore",
    "ClaimCheckCodec",
    "DurableConfig",
    "DurableSession",
    "FileBlobStore",
    "SessionWorkflow",
    "claim_check_converter",
    "conjure_worker",
    "session_alive",
]

publish(__name__, {name: globals()[name] for name in __all__})
