"""The worker helper: the session workflow and its activities on a Temporal worker."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from conjure_async.models._base import ApiCallback
from conjure_async.temporal._activities import BackendFactory, SessionActivities
from conjure_async.temporal._spec import host_queue
from conjure_async.temporal._workflow import SessionWorkflow

__all__ = ["conjure_worker", "workflow_runner"]


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's workflow sandbox, with this package passed through (it is deterministic)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("conjure_async")
    )


@asynccontextmanager
async def conjure_worker(
    client: Client,
    *,
    task_queue: str,
    backends: Mapping[str, BackendFactory],
    models: Mapping[str, ApiCallback],
    host: str | None = None,
    deps: Any = None,
    sticky_timeout: float = 10.0,
    interceptors: Sequence[Interceptor] = (),
    **worker_options: Any,
) -> AsyncIterator[Worker]:
    """Run a worker for durable sessions while the block runs.

    Two Temporal workers poll: one on ``task_queue`` (the workflow, model
    calls, tools of backends any worker can reach) and one on this host's own
    queue (tools of host-bound backends such as Local, whose workspace is a
    path on this machine). On exit both stop and every backend this worker
    opened is closed.

    Args:
        client: A connected Temporal client.
        task_queue: The sessions' task queue.
        backends: A factory per backend ``kind``: ``config -> Backend``.
        models: Model callbacks by the key ``DurableConfig.model`` names.
        host: This machine's id for host-bound backends (default: the host name).
        deps: Passed to tools as ``ctx.deps``.
        interceptors: Temporal worker interceptors (on both workers).
        sticky_timeout: Seconds a workflow task waits for this worker's sticky
            queue before any worker takes it (lower: faster takeover after a crash).
        **worker_options: More ``temporalio.worker.Worker`` options.

    Yields:
        The main Temporal worker.
    """
    host_id = host or socket.gethostname()
    async with SessionActivities(backends, models, host=host_id, deps=deps) as activities:
        main = Worker(
            client,
            task_queue=task_queue,
            workflows=[SessionWorkflow],
            activities=activities.activities(),
            workflow_runner=workflow_runner(),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=sticky_timeout),
            interceptors=interceptors,
            **worker_options,
        )
        local = Worker(
            client,
            task_queue=host_queue(task_queue, host_id),
            activities=activities.activities(),
            interceptors=interceptors,
        )
        async with main, local:
            yield main
