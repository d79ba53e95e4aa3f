"""The application's handle on a durable session: chat, stream, state, close."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from conjure_async import _exceptions as errors
from conjure_async._decisions import split_decisions
from conjure_async.events import Event, PendingCall, Reply, event_adapter
from conjure_async.messages import Message, Usage
from conjure_async.temporal._claim_check import BlobError
from conjure_async.temporal._spec import (
    KEPT_TURNS,
    WORKFLOW_NAME,
    ChatRequest,
    DurableConfig,
    EventsQuery,
    SessionInput,
)

__all__ = ["DurableSession"]

_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")  # a blob's key in a BlobError's message

_SIMPLE_ERRORS: dict[str, type[errors.ConjureError]] = {
    cls.__name__: cls
    for cls in (
        errors.ConjureError,
        errors.SessionError,
        errors.SessionStateError,
        errors.ToolConflictError,
        errors.SkillConflictError,
        errors.BackendError,
        errors.SandboxUnavailableError,
        errors.DockerError,
        errors.DockerUnavailableError,
        errors.ImageNotFoundError,
        errors.ContainerDiedError,
        errors.ModelError,
        errors.ModelResponseError,
        errors.StoreError,
    )
}


class DurableSession:
    """A conversation run by a Temporal workflow: it outlives the workers and the caller.

    Get one with :meth:`start` (a new session) or :meth:`attach` (one that
    runs already, e.g. in another web request); both are cheap handles, not
    connections. Every method talks to the workflow; a worker must be
    running (``conjure_worker``).

    Args:
        handle: The session workflow's handle.
        poll_interval: Seconds between event polls while :meth:`stream` runs.
    """

    def __init__(self, handle: WorkflowHandle[Any, Any], *, poll_interval: float = 0.1) -> None:
        self._handle = handle
        self.poll_interval = poll_interval

    @classmethod
    async def start(
        cls,
        client: Client,
        config: DurableConfig,
        *,
        task_queue: str,
        session_id: str | None = None,
    ) -> DurableSession:
        """Start a new durable session (its workflow id is ``session_id``, default random)."""
        session_id = session_id or uuid.uuid4().hex
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            SessionInput(session_id=session_id, config=config),
            id=session_id,
            task_queue=task_queue,
        )
        return cls(handle)

    @classmethod
    def attach(cls, client: Client, session_id: str) -> DurableSession:
        """A handle on a running session (its latest run, also after continue-as-new)."""
        return cls(client.get_workflow_handle(session_id))

    @property
    def session_id(self) -> str:
        """The session's id (its workflow id)."""
        return self._handle.id

    async def chat(
        self,
        message: str | list[dict[str, Any]] | None = None,
        *,
        approvals: Mapping[str, Any] | None = None,
    ) -> Reply:
        """Run one turn (a message, or decisions for ``reply.pending``); return its reply.

        Raises:
            SessionStateError: Calls await approval and a message was sent (or
                the approvals do not match the pending calls).
            MaxIterationsError: The turn needed more model calls than allowed.
            ModelError: A model call failed after its retries.
            BackendError: A tool's backend failed after its retries.
            BlobError: A claim-checked payload the turn needs (e.g. a model
                call's input) is missing or tampered: its ``digest`` names it.
        """
        request = _request(message, approvals)
        try:
            raw = await self._handle.execute_update("chat", request, id=request.turn_id)
        except WorkflowUpdateFailedError as exc:
            raise _error_of(exc) from exc
        except RPCError as exc:
            raise await self._ended(exc) from exc
        return Reply.model_validate(raw)

    async def stream(
        self,
        message: str | list[dict[str, Any]] | None = None,
        *,
        approvals: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        """Run one turn and yield its events while it runs (read by polling a query).

        Events come per model response and per tool call (text arrives a
        whole response at a time: the model call is an activity); the last
        one is ``turn_finished`` with the reply. Leaving the iteration early
        does not stop the turn: it goes on in the workflow.

        The workflow holds a turn's events until four later turns have finished
        (and the last turn's across a continue-as-new): a reader that falls
        further behind gets :class:`SessionStateError` instead of its events.

        Raises:
            SessionStateError: Calls await approval and a message was sent, or
                the turn's events are no longer held (read its outcome with
                :meth:`history`).
        """
        request = _request(message, approvals)
        try:
            update = await self._handle.start_update(
                "chat", request, id=request.turn_id, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
        except WorkflowUpdateFailedError as exc:
            raise _error_of(exc) from exc
        except RPCError as exc:
            raise await self._ended(exc) from exc
        position = 0
        while True:
            page = await self._handle.query("events", EventsQuery(request.turn_id, position))
            if not page.get("held", True):  # a worker of before ``held`` always held them
                raise errors.SessionStateError(
                    f"the events of turn {request.turn_id} are no longer held by the durable "
                    f"session {self.session_id}: it keeps the last {KEPT_TURNS} finished "
                    "turns' events (of an earlier run, its last turn's only) and this reader "
                    "fell behind; the turn itself went on: read its outcome with history(), "
                    "or use chat() for the reply alone"
                )
            for data in page["events"]:
                yield event_adapter.validate_python(data)
            position = page["next"]
            if page["finished"]:
                break
            await anyio.sleep(self.poll_interval)
        try:
            await update.result()
        except WorkflowUpdateFailedError as exc:
            raise _error_of(exc) from exc

    async def _ended(self, exc: RPCError) -> Exception:
        """Why a turn could not be sent: the session's failure when its workflow ended."""
        try:
            await self._handle.result()
        except WorkflowFailureError as failed:
            return _error_of(failed)
        except RPCError:
            return exc
        return errors.SessionStateError(f"the durable session {self.session_id} is closed")

    async def state(self) -> dict[str, Any]:
        """The session's whole state (history, usage, files, backends' state), JSON-able."""
        result: dict[str, Any] = await self._handle.query("state")
        return result

    async def history(self) -> list[Message]:
        """The conversation history."""
        engine = (await self.state())["engine"] or {"messages": []}
        return [Message.model_validate(m) for m in engine["messages"]]

    async def usage(self) -> Usage:
        """Token usage summed over every model call of the session."""
        engine = (await self.state())["engine"] or {}
        return Usage.model_validate(engine.get("usage") or {"input_tokens": 0, "output_tokens": 0})

    async def pending(self) -> list[PendingCall]:
        """Tool calls waiting for a decision, in call order."""
        raw: list[dict[str, Any]] = await self._handle.query("pending")
        return [PendingCall.model_validate(call) for call in raw]

    async def close(self) -> dict[str, Any]:
        """Close the backends and end the session; return its final state."""
        await self._handle.signal("close")
        result: dict[str, Any] = await self._handle.result()
        return result


def _request(
    message: str | list[dict[str, Any]] | None, approvals: Mapping[str, Any] | None
) -> ChatRequest:
    if (message is None) == (approvals is None):
        raise ValueError(
            "give a message, or approvals for the pending tool calls (not both, not neither)"
        )
    turn_id = uuid.uuid4().hex
    if approvals is None:
        return ChatRequest(turn_id=turn_id, message=message)
    approve, deny = split_decisions(approvals)
    return ChatRequest(turn_id=turn_id, approve=approve, deny=deny)


def _error_of(exc: WorkflowUpdateFailedError | WorkflowFailureError) -> Exception:
    """The package's exception for a failed turn (the Temporal failure chained to it)."""
    cause: BaseException | None = exc.cause
    failure: ApplicationError | None = None
    while cause is not None:
        if isinstance(cause, ApplicationError):
            if cause.type == "BlobError":  # the root cause, whatever wraps it
                return _blob_error(cause.message)
            if failure is None:  # the outermost: its causes are details
                failure = cause
        cause = cause.__cause__
    if failure is None:
        return errors.SessionError(f"the durable turn failed: {exc.cause or exc}")
    message, kind = failure.message, failure.type or ""
    if kind == "MaxIterationsError":
        found = re.search(r"max_iterations=(\d+)", message)
        return errors.MaxIterationsError(int(found.group(1)) if found else 0)
    if kind in ("ValueError", "TypeError"):
        return ValueError(message) if kind == "ValueError" else TypeError(message)
    return _SIMPLE_ERRORS.get(kind, errors.SessionError)(message)


def _blob_error(message: str) -> BlobError:
    """A claim-checked payload a worker could not read (e.g. an activity's input)."""
    found = _DIGEST.search(message)
    return BlobError(message, digest=found.group(0) if found else None)
