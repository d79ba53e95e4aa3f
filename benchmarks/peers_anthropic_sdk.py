"""The official anthropic SDK's side: ``client.beta.messages.tool_runner`` + ``@beta_async_tool``.

Two variants over the same mock transport as conjure_async's ``AnthropicModel``:

* ``thread=False``: the full history is sent on every request, as
  conjure_async does (like against like);
* the SDK default: a server-side message thread (the ``message-threads``
  beta), where each request carries only the new messages. The mock server
  ignores the thread, so this shows the client's cost when the server keeps
  the history.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
from anthropic import beta_async_tool

from benchmarks.peers_common import FINAL_TEXT, MODEL_NAME, PROMPT, Stamps
from benchmarks.peers_http import mock_anthropic_transport


@beta_async_tool
async def noop(i: int) -> str:
    """Do nothing and return ok."""
    return "ok"


async def _run(n: int, stamps: Stamps, **options: Any) -> None:
    transport = mock_anthropic_transport(n, stamps)
    async with httpx2.AsyncClient(transport=transport) as http_client:
        client = anthropic.AsyncAnthropic(
            api_key="bench-key", base_url="http://anthropic.bench", http_client=http_client
        )
        runner = client.beta.messages.tool_runner(
            model=MODEL_NAME,
            max_tokens=4096,
            messages=[{"role": "user", "content": PROMPT}],
            tools=[noop],
            max_iterations=n + 1,
            **options,
        )
        final = await runner.until_done()
    text = "".join(getattr(block, "text", "") for block in final.content)
    if text != FINAL_TEXT or transport.calls != n + 1:
        raise RuntimeError(f"anthropic SDK: unexpected end ({transport.calls} calls, {text!r})")


async def conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call tool runner loop sending the full history (``thread=False``)."""
    await _run(n, stamps, thread=False)


async def thread_conversation(n: int, stamps: Stamps) -> None:
    """One ``n``-call tool runner loop in the SDK's default (message thread) mode."""
    await _run(n, stamps)
