"""Claim check: large Temporal payloads live in a blob store, a reference travels instead.

Temporal refuses a payload above 2 MB by default; a durable session's model
call takes the whole history as its input, so a long session would hit it.
:class:`ClaimCheckCodec` is a ``PayloadCodec``: a payload above the
threshold is stored in a :class:`BlobStore` under its sha256 and replaced by
a small reference payload (encoding ``conjure/claim-check``); decoding fetches
the blob and verifies its digest. It runs outside the workflow sandbox, on
every payload the client and the workers send (workflow and update inputs,
activity inputs and results, query results, the continue-as-new snapshot).

A blob that cannot be read (missing, unreadable, its bytes changed) raises
:class:`BlobError` naming its digest, and is logged as the error event
``claim_check.blob_unreadable`` (digest, store, session id) each time: in a
worker it fails the workflow task, which Temporal retries until the blob is
back (ADR 0016), so the log is what an operator sees, once per attempt.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from conjure_async._exceptions import StoreError
from conjure_async._logging import get_logger

__all__ = ["BlobError", "BlobStore", "ClaimCheckCodec", "FileBlobStore", "claim_check_converter"]

ENCODING = b"conjure/claim-check"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobError(StoreError):
    """A claim-checked payload's blob is missing, unreadable or does not match its digest.

    Attributes:
        digest: The blob's sha256 hex digest (its key), when the reference gave one.
    """

    def __init__(self, message: str, *, digest: str | None = None) -> None:
        super().__init__(message)
        self.digest = digest


@runtime_checkable
class BlobStore(Protocol):
    """Where claim-checked payloads live: shared by the client and every worker.

    Keys are sha256 hex digests of the content, so a put of a key that exists
    may be skipped. Implement these two methods to plug in S3, GCS, etc.
    """

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (durably, before returning)."""

    async def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""


class FileBlobStore:
    """A blob store in a directory (one host, or a mount every worker shares).

    Writes are atomic (a temporary file in the directory, then a rename), so
    a reader never sees half a blob. Nothing is ever deleted: removing blobs
    of sessions that are over is the operator's job.

    Args:
        directory: The folder of the blobs (created when missing).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.directory)!r})"

    def _path(self, key: str) -> Path:
        if not _DIGEST.fullmatch(key):
            raise BlobError(f"not a blob key (a sha256 hex digest): {key[:80]!r}")
        return self.directory / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (skipped when the blob exists)."""
        await anyio.to_thread.run_sync(self._put, self._path(key), data)

    async def get(self, key: str) -> bytes | None:
        """The blob's bytes, or ``None`` when it is missing."""
        return await anyio.to_thread.run_sync(self._get, self._path(key))

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @staticmethod
    def _get(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None


class ClaimCheckCodec(PayloadCodec, WithSerializationContext):
    """A ``PayloadCodec`` that moves payloads above ``threshold`` bytes into a blob store.

    Args:
        store: The blob store (the same one for the client and every worker).
        threshold: Payloads of at least this many bytes are stored (default 256 KiB).
    """

    def __init__(self, store: BlobStore, *, threshold: int = 256 * 1024) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1 byte")
        self.store = store
        self.threshold = threshold
        self._session_id: str | None = None

    def with_context(self, context: SerializationContext) -> ClaimCheckCodec:
        """This codec, naming the workflow (the session) its payloads belong to in its logs."""
        bound = copy.copy(self)
        bound._session_id = getattr(context, "workflow_id", None)
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each large payload by a reference to its stored blob."""
        return [await self._encode(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each reference by its blob's payload (digest verified).

        Raises:
            BlobError: A blob is missing, or its content does not match its digest
                (also logged: ``claim_check.blob_unreadable``).
        """
        try:
            return [await self._decode(payload) for payload in payloads]
        except BlobError as exc:
            get_logger(session_id=self._session_id).error(
                "claim_check.blob_unreadable",
                digest=exc.digest,
                store=repr(self.store),
                error=str(exc),
            )
            raise

    async def _encode(self, payload: Payload) -> Payload:
        if payload.ByteSize() < self.threshold:
            return payload
        data = payload.SerializeToString()
        key = hashlib.sha256(data).hexdigest()
        try:
            await self.store.put(key, data)
        except BlobError:
            raise
        except Exception as exc:
            raise BlobError(f"could not store the payload blob {key}: {exc}", digest=key) from exc
        reference = json.dumps({"sha256": key, "size": len(data)}).encode()
        return Payload(metadata={"encoding": ENCODING}, data=reference)

    async def _decode(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        try:
            key = str(json.loads(payload.data)["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BlobError(f"a malformed claim-check reference: {payload.data[:80]!r}") from exc
        try:
            data = await self.store.get(key)
        except BlobError:
            raise
        except Exception as exc:
            raise BlobError(f"could not read the payload blob {key}: {exc}", digest=key) from exc
        if data is None:
            raise BlobError(f"the payload blob {key} is missing from {self.store!r}", digest=key)
        if hashlib.sha256(data).hexdigest() != key:
            raise BlobError(
                f"the payload blob {key} in {self.store!r} does not match its digest", digest=key
            )
        decoded = Payload()
        decoded.ParseFromString(data)
        return decoded


def claim_check_converter(store: BlobStore, *, threshold: int = 256 * 1024) -> DataConverter:
    """Temporal's default data converter with a :class:`ClaimCheckCodec` on ``store``.

    Pass it to ``Client.connect(address, data_converter=...)`` in the
    application and in every worker (workers use their client's converter).
    """
    return DataConverter(payload_codec=ClaimCheckCodec(store, threshold=threshold))
