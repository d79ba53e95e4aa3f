"""Model clients: the api callback seam and the built-in Anthropic clients.

Any ``async (MessagesRequest) -> MessagesResponse`` callable is a model.
:class:`AnthropicModel` speaks the Messages API over one pooled
``httpx2.AsyncClient``; :class:`AnthropicSDKModel` wraps a user's
``anthropic.AsyncAnthropic`` client (the ``[anthropic]`` extra).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._public import publish
from conjure_async.models._base import ApiCallback, StreamingApiCallback, TextHandler, call_model

if TYPE_CHECKING:
    from conjure_async.models._anthropic import AnthropicModel
    from conjure_async.models._sdk import AnthropicSDKModel

__all__ = [
    "AnthropicModel",
    "AnthropicSDKModel",
    "ApiCallback",
    "StreamingApiCallback",
    "TextHandler",
    "call_model",
]

_LAZY = {
    "AnthropicModel": "conjure_async.models._anthropic",
    "AnthropicSDKModel": "conjure_async.models._sdk",
}


publish(__name__, {name: globals()[name] for name in __all__ if name in globals()})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    obj = getattr(importlib.import_module(module), name)
    publish(__name__, {name: obj})
    return obj
