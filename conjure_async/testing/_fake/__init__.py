"""A fake Anthropic API: a real HTTP server on 127.0.0.1 for testing agents.

:class:`FakeAnthropicServer` speaks the Messages API (JSON and SSE streaming),
the Skills API and the Files API over a real socket, so the code under test
runs exactly as it would against ``https://api.anthropic.com``: headers,
retries, streaming, multipart uploads and downloads included. It records
every request, so tests assert what was sent::

    from conjure_async import Session
    from conjure_async.models import AnthropicModel
    from conjure_async.testing import FakeAnthropicServer, text_response
    from conjure_async.testing import ErrorResponse

    async def test_my_agent_retries_once() -> None:
        async with FakeAnthropicServer() as server:
            server.inject(ErrorResponse(529))                # the next call: overloaded
            server.queue(text_response("Hello!"))            # then this answer
            async with AnthropicModel(base_url=server.base_url, api_key="test") as model:
                async with Session(model=model) as session:
                    reply = await session.chat("Hi")
        assert reply.text == "Hello!"
        assert len(server.message_requests) == 2

Messages answers come from a queue (:meth:`FakeAnthropicServer.queue`) of
:class:`~conjure_async.messages.MessagesResponse` objects, dicts, or functions
of the request body (sync or async); a request with ``"stream": true`` gets
the answer as a proper event sequence (``message_start``, the content blocks
with text and ``input_json`` deltas, server tool results whole,
``message_delta``, ``message_stop``). A request naming the code execution
tool or a container gets a ``container`` (``container_fake_N``) unless the
answer sets one, and the container keeps the id the request sent.

Faults (:meth:`FakeAnthropicServer.inject`) apply to the next matching
request: :class:`ErrorResponse` (a status with an Anthropic error body and
headers such as ``retry-after``), :class:`DropConnection` (reset the
connection before answering), :class:`MalformedJSON`, :class:`Delay` (a slow
answer), :class:`StreamError` (an ``error`` event mid-stream),
:class:`StreamDrop` (the connection resets mid-stream), :class:`StreamRaw`
(arbitrary bytes mid-stream, e.g. a malformed frame), :class:`StreamPings`
(``ping`` events forever, never finishing) and :class:`PlainJSON` (a streamed
request answered with the whole message as plain JSON, as some gateways do).

The Skills and Files stores are in memory; uploads are checked like the
real API's (one top folder named like the skill, under 8 MB, a ``[a-z0-9-]``
name without "anthropic" or "claude", a description of 1-1024 characters
without XML tags). Responses use the beta shapes when
the request sends the ``skills-2025-10-02`` / ``files-api-2025-04-14`` beta
header and the post-GA shapes otherwise. Files "created in the container" are
added with :meth:`FakeAnthropicServer.add_file`.

Needs ``uvicorn`` (the ``[test]`` extra).

One module per concept: ``_server`` (the public face, the lifecycle, the way
in), ``_faults``, ``_http`` (requests recorded, responses written),
``_messages`` (answers and the stream), ``_sse`` (a message as its events),
``_skills``, ``_files`` and ``_paging`` (listings).
"""

from __future__ import annotations

from conjure_async.testing._fake._faults import (
    Delay,
    DropConnection,
    ErrorResponse,
    Fault,
    MalformedJSON,
    PlainJSON,
    StreamDrop,
    StreamError,
    StreamPings,
    StreamRaw,
)
from conjure_async.testing._fake._http import MultipartPart, RecordedRequest
from conjure_async.testing._fake._messages import MessagesStep
from conjure_async.testing._fake._server import FakeAnthropicServer
from conjure_async.testing._fake._sse import message_stream_events

__all__ = [
    "Delay",
    "DropConnection",
    "ErrorResponse",
    "FakeAnthropicServer",
    "Fault",
    "MalformedJSON",
    "MessagesStep",
    "MultipartPart",
    "PlainJSON",
    "RecordedRequest",
    "StreamDrop",
    "StreamError",
    "StreamPings",
    "StreamRaw",
    "message_stream_events",
]
