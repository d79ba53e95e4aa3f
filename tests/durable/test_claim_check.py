"""Claim check: a durable session whose history exceeds Temporal's 2 MB payload cap."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)

from conjure_async.temporal import (
    BackendSpec,
    BlobError,
    ClaimCheckCodec,
    DurableConfig,
    DurableSession,
    FileBlobStore,
    claim_check_converter,
    conjure_worker,
)
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model
from tests.durable.temporal_server import TemporalServer

pytestmark = pytest.mark.anyio

_BIG_TURN = "blobs: 4 800000"  # four tool results of 800 KB: a 3.2 MB history


async def _client(server: TemporalServer, blobs: Path | None) -> Client:
    if blobs is None:
        return await Client.connect(server.address)
    converter = claim_check_converter(FileBlobStore(blobs))
    return await Client.connect(server.address, data_converter=converter)


async def test_a_history_over_the_payload_cap_runs_and_continues_as_new(
    temporal_server: TemporalServer, task_queue: str, tmp_path: Path
) -> None:
    """3.2 MB of tool results in one turn, a continue-as-new, and the next turn sees it all."""
    client = await _client(temporal_server, tmp_path / "blobs")
    async with conjure_worker(
        client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        config = DurableConfig(backends=[BackendSpec("native")], turns_per_run=1)
        session = await DurableSession.start(client, config, task_queue=task_queue)
        reply = await session.chat(_BIG_TURN)
        assert reply.text == "done"
        assert [len(c.output) for c in reply.tool_calls] == [800_000] * 4
        second = await session.chat("add: 1 2")  # runs on the run continued from the snapshot
        assert second.text == "got: 3"
        state = await session.state()
        assert state["runs"] == 2
        history = await session.history()
        assert len(history) == 14
        assert sum(len(m.model_dump_json()) for m in history) > 3_200_000
        await session.close()
    assert list((tmp_path / "blobs").rglob("*"))  # the large payloads went to the store


async def _payload_too_large(client: Client, session_id: str) -> str:
    """Wait for a failed workflow task in the session's history; return its failure message."""
    handle = client.get_workflow_handle(session_id)
    while True:
        history = await handle.fetch_history()
        for event in history.events:
            if event.HasField("workflow_task_failed_event_attributes"):
                return event.workflow_task_failed_event_attributes.failure.message
        await anyio.sleep(0.2)


async def test_without_the_claim_check_the_same_session_hits_the_payload_cap(
    temporal_server: TemporalServer, task_queue: str
) -> None:
    """The same turn without the codec: the model call's input exceeds 2 MB, the task fails."""
    client = await _client(temporal_server, None)
    async with conjure_worker(
        client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        config = DurableConfig(backends=[BackendSpec("native")], turns_per_run=1)
        session = await DurableSession.start(client, config, task_queue=task_queue)

        async def chat() -> None:
            with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
                await session.chat(_BIG_TURN)  # never answers: cancelled below

        async with anyio.create_task_group() as group:
            group.start_soon(chat)
            with anyio.fail_after(120):  # a guard, not a timing assertion
                message = await _payload_too_large(client, session.session_id)
            group.cancel_scope.cancel()
        assert "exceeded the error limit" in message
        await client.get_workflow_handle(session.session_id).terminate("payload cap hit")


async def test_a_tampered_or_missing_blob_is_a_clear_error(
    temporal_server: TemporalServer, task_queue: str, tmp_path: Path
) -> None:
    """A blob whose bytes changed (or that is gone) fails decoding with BlobError, not garbage."""
    blobs = tmp_path / "blobs"
    client = await _client(temporal_server, blobs)
    async with conjure_worker(
        client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        config = DurableConfig(backends=[BackendSpec("native")])
        session = await DurableSession.start(client, config, task_queue=task_queue)
        await session.chat("blobs: 1 400000")
        assert len(await session.history()) == 4  # the state query's result is a blob
        stored = [path for path in blobs.rglob("*") if path.is_file()]
        for path in stored:
            data = bytearray(path.read_bytes())
            data[-10] ^= 0xFF
            path.write_bytes(bytes(data))
        with pytest.raises(BlobError, match="does not match its digest"):
            await session.history()  # the same state: the worker finds its blob, it is tampered
        for path in stored:
            path.unlink()
        history = await client.get_workflow_handle(session.session_id).fetch_history()
        references = [
            payload
            for event in history.events
            if event.HasField("activity_task_completed_event_attributes")
            for payload in event.activity_task_completed_event_attributes.result.payloads
            if payload.metadata["encoding"] == b"conjure/claim-check"
        ]
        assert references  # the 400 KB tool result went to the store
        with pytest.raises(BlobError, match="is missing"):
            await client.data_converter.decode(references)  # as a replaying worker would
        await client.get_workflow_handle(session.session_id).terminate("blobs gone")


async def _failed_task(client: Client, session_id: str) -> tuple[str, str]:
    """Wait for a failed workflow task and a retry of it; the failure's message and type."""
    handle = client.get_workflow_handle(session_id)
    while True:
        history = await handle.fetch_history()
        failed = [
            event.workflow_task_failed_event_attributes.failure
            for event in history.events
            if event.HasField("workflow_task_failed_event_attributes")
        ]
        attempt = (await handle.describe()).raw_description.pending_workflow_task.attempt
        if failed and attempt >= 2:
            return failed[-1].message, failed[-1].application_failure_info.type
        await anyio.sleep(0.2)


async def test_a_tampered_blob_met_in_a_replay_is_a_retried_task_logged_per_attempt(
    temporal_server: TemporalServer, task_queue: str, tmp_path: Path
) -> None:
    """Replay meets a tampered blob: the task fails naming the digest, each attempt logs it,
    the session stays open, and restoring the blob lets it go on with nothing lost."""
    blobs = tmp_path / "blobs"
    client = await _client(temporal_server, blobs)
    options = {"backends": factories(), "models": {"default": fake_model}}
    config = DurableConfig(backends=[BackendSpec("native")])
    async with conjure_worker(client, task_queue=task_queue, **options):  # type: ignore[arg-type]  # test options
        session = await DurableSession.start(client, config, task_queue=task_queue)
        await session.chat("blobs: 1 400000")  # the tool's result is a blob in the history
    saved = {path: path.read_bytes() for path in blobs.rglob("*") if path.is_file()}
    for path, data in saved.items():
        path.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    # A new worker without a workflow cache replays the whole history for any task.
    with capture_logs() as logs:
        async with conjure_worker(
            client,
            task_queue=task_queue,
            max_cached_workflows=0,
            **options,  # type: ignore[arg-type]  # test options
        ):

            async def chat() -> None:
                with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
                    await session.chat("say: waiting")  # its task cannot replay

            async with anyio.create_task_group() as group:
                group.start_soon(chat)
                with anyio.fail_after(120):  # a guard, not a timing assertion
                    message, kind = await _failed_task(client, session.session_id)
                group.cancel_scope.cancel()
            unreadable = [log for log in logs if log["event"] == "claim_check.blob_unreadable"]
            digests = {path.name for path in saved}
            assert kind == "BlobError"
            assert "does not match its digest" in message
            assert any(digest in message for digest in digests)  # the digest is named
            assert len(unreadable) >= 2  # one per attempt: the first and its retry
            assert all(log["digest"] in digests for log in unreadable)
            assert all(log["session_id"] == session.session_id for log in unreadable)
            described = await client.get_workflow_handle(session.session_id).describe()
            assert described.status == WorkflowExecutionStatus.RUNNING  # retried, not failed
            for path, data in saved.items():
                path.write_bytes(data)  # the operator restores the blob
            with anyio.fail_after(120):  # a guard, not a timing assertion
                assert (await session.chat("say: back")).text == "back"
            history = await session.history()
            assert history[0].content == "blobs: 1 400000"  # the first turn kept whole
            assert len(history[2].content[0].content) == 400_000  # its blob's content
            assert history[-1].content[0].text == "back"
            await session.close()


async def test_small_payloads_stay_inline_and_bad_keys_are_refused(tmp_path: Path) -> None:
    """Below the threshold nothing is stored; a key that is not a digest never becomes a path."""
    store = FileBlobStore(tmp_path / "blobs")
    codec = ClaimCheckCodec(store, threshold=100)
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"')
    large = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * 200 + b'"')
    encoded = await codec.encode([small, large])
    assert encoded[0] == small
    assert encoded[1].metadata["encoding"] == b"conjure/claim-check"
    assert encoded[1].ByteSize() < large.ByteSize()
    assert await codec.decode(encoded) == [small, large]
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1
    forged = Payload(metadata={"encoding": b"conjure/claim-check"}, data=b'{"sha256": "../../x"}')
    with pytest.raises(BlobError, match="not a blob key"):
        await codec.decode([forged])
    with pytest.raises(ValueError, match="at least 1 byte"):
        ClaimCheckCodec(store, threshold=0)


class _TamperingStore(FileBlobStore):
    """A file blob store that, once ``tamper`` is set, stores every new blob with flipped bytes."""

    tamper = False

    async def put(self, key: str, data: bytes) -> None:
        if self.tamper:
            data = data[:-10] + bytes(b ^ 0xFF for b in data[-10:])
        await super().put(key, data)


async def test_a_blob_tampered_before_the_activity_reads_it_raises_blob_error_from_chat(
    temporal_server: TemporalServer, task_queue: str, tmp_path: Path
) -> None:
    """A model call's input blob tampered on its way to the activity: chat() raises BlobError."""
    store = _TamperingStore(tmp_path / "blobs")
    client = await Client.connect(
        temporal_server.address, data_converter=claim_check_converter(store)
    )
    async with conjure_worker(
        client, task_queue=task_queue, backends=factories(), models={"default": fake_model}
    ):
        config = DurableConfig(backends=[BackendSpec("native")], model_attempts=1)
        session = await DurableSession.start(client, config, task_queue=task_queue)
        await session.chat("blobs: 1 400000")  # the history now holds a 400 KB tool result
        store.tamper = True  # the next model call's input (that history) is a tampered blob
        with pytest.raises(BlobError, match="does not match its digest") as raised:
            await session.chat("add: 1 2")
        error = raised.value
        assert error.digest is not None
        assert error.digest in str(error)
        assert repr(store) in str(error)  # names the store the blob is in
        assert (tmp_path / "blobs" / error.digest[:2] / error.digest).is_file()
        store.tamper = False
        assert (await session.chat("add: 1 2")).text == "got: 3"  # the session goes on
        await session.close()
