"""Whether a durable session still runs: what orphan sweeping asks about kept containers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

__all__ = ["session_alive"]


def session_alive(client: Client) -> Callable[[str], Awaitable[bool]]:
    """A ``session_alive`` check for ``sweep_orphans``: is the session's workflow running?

    A session is alive while its workflow runs (or continues as new); a
    session that was closed, failed, terminated or never existed is not, and
    its kept containers are orphans::

        await sweep_orphans(session_alive=session_alive(client))
    """

    async def alive(session_id: str) -> bool:
        try:
            described = await client.get_workflow_handle(session_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.CONTINUED_AS_NEW,
        )

    return alive
