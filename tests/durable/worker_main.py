"""A durable-session worker in its own process (the kill test kills it by PID).

Usage: ``python -m tests.durable.worker_main ADDRESS TASK_QUEUE HOST [STALL_MARKER]``.
With ``STALL_MARKER``, the first attempt of the tool call whose command holds
``step 2`` finishes, writes the marker file and then hangs before reporting
its result: the test kills the worker there (finished, not reported).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from conjure_async.temporal import conjure_worker
from tests.durable.backends import factories
from tests.durable.fake_model import fake_model


class _Stall(Interceptor):
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        marker = self.marker

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                result = await super().execute_activity(input)
                info = activity.info()
                command = str(getattr(input.args[0], "input", {}).get("command", ""))
                if (
                    info.activity_type == "conjure.tool"
                    and info.attempt == 1
                    and "step 2" in command
                ):
                    marker.write_text(str(info.attempt))
                    await asyncio.sleep(600)  # killed here: finished, never reported
                return result

        return Inbound(next)


async def main(address: str, task_queue: str, host: str, marker: str | None) -> None:
    client = await Client.connect(address)
    interceptors = [_Stall(Path(marker))] if marker else []
    async with conjure_worker(
        client,
        task_queue=task_queue,
        backends=factories(),
        models={"default": fake_model},
        host=host,
        sticky_timeout=2.0,
        interceptors=interceptors,
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(arguments[0], arguments[1], arguments[2], arguments[3] if len(arguments) > 3 else None)
    )
