"""Shared parts of the web service examples (FastAPI and aiohttp).

* :mod:`.store`: :class:`SessionStore`, one live session per conversation.
* :mod:`.events`: forwarding a chat's events as Server-Sent Events.
* :mod:`.files`: serving the files a conversation's tools created.
* :mod:`.demo`: the offline scripted model and the default factories.
"""

from .events import encode_event, forward_events
from .files import FileRefusedError, read_created_file
from .store import (
    ConversationNotFoundError,
    SessionFactory,
    SessionStore,
    StoreClosedError,
    TenantBusyError,
    conversation_key,
)

__all__ = [
    "ConversationNotFoundError",
    "FileRefusedError",
    "SessionFactory",
    "SessionStore",
    "StoreClosedError",
    "TenantBusyError",
    "conversation_key",
    "encode_event",
    "forward_events",
    "read_created_file",
]
