"""Test doubles for conjure_async users: part of the product.

* :class:`ScriptedModel`: an api callback answering from a script, recording
  every request; build its steps with :func:`text_response`,
  :func:`tool_use_response` and :func:`tool_call`.
* :func:`collect`, :func:`assert_events`, :func:`summarize`: assert whole
  event sequences.
* :data:`EXAMPLE_SKILLS`: the folder of the example skills, to try things
  out from any working directory (``load_skills(EXAMPLE_SKILLS)``).
* ``FakeAnthropicServer``: a real HTTP server on 127.0.0.1 speaking the
  Anthropic API (Messages, Skills, Files), with error injection (the faults
  ``ErrorResponse``, ``DropConnection``, ``MalformedJSON``, ``Delay``,
  ``StreamError``, ``StreamDrop``, ``StreamRaw``, ``StreamPings``,
  ``PlainJSON``); it records each request as a ``RecordedRequest``.

The library never imports this package; only the offline demo
(``conjure demo``) does, to play the model and the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._public import publish
from conjure_async.testing._assertions import DEFAULT_IGNORED, assert_events, collect, summarize
from conjure_async.testing._examples import EXAMPLE_SKILLS
from conjure_async.testing._scripted import (
    ScriptedModel,
    ScriptStep,
    text_response,
    tool_call,
    tool_use_response,
)

if TYPE_CHECKING:
    from conjure_async.testing._fake import (
        Delay,
        DropConnection,
        ErrorResponse,
        FakeAnthropicServer,
        MalformedJSON,
        MultipartPart,
        PlainJSON,
        RecordedRequest,
        StreamDrop,
        StreamError,
        StreamPings,
        StreamRaw,
        message_stream_events,
    )

__all__ = [  # noqa: RUF022 - plain sorted(), as the public-API tests check
    "DEFAULT_IGNORED",
    "Delay",
    "DropConnection",
    "EXAMPLE_SKILLS",
    "ErrorResponse",
    "FakeAnthropicServer",
    "MalformedJSON",
    "MultipartPart",
    "PlainJSON",
    "RecordedRequest",
    "ScriptStep",
    "ScriptedModel",
    "StreamDrop",
    "StreamError",
    "StreamPings",
    "StreamRaw",
    "assert_events",
    "collect",
    "message_stream_events",
    "summarize",
    "text_response",
    "tool_call",
    "tool_use_response",
]

# The fake server needs uvicorn (the [test] or [demo] extra): imported on first use.
_FAKE_SERVER_NAMES = frozenset(
    {
        "Delay",
        "DropConnection",
        "ErrorResponse",
        "FakeAnthropicServer",
        "MalformedJSON",
        "MultipartPart",
        "PlainJSON",
        "RecordedRequest",
        "StreamDrop",
        "StreamError",
        "StreamPings",
        "StreamRaw",
        "message_stream_events",
    }
)


publish(__name__, {name: globals()[name] for name in __all__ if name in globals()})


def __getattr__(name: str) -> Any:
    if name in _FAKE_SERVER_NAMES:
        obj = getattr(importlib.import_module("conjure_async.testing._fake"), name)
        publish(__name__, {name: obj})
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
