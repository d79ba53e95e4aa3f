"""Session stores: conversations that outlive a request, a process or a host.

Bind a session to a store and every completed turn and every tool result is
saved; the next session bound to the same conversation id (in this process
or another) continues it::

    from conjure_async import Session
    from conjure_async.store import SQLiteStore

    async with SQLiteStore("conversations.db") as store:
        async with Session(backend, model=model, store=store, conversation_id="c1") as session:
            reply = await session.chat("Analyze app.log")

Three implementations of :class:`SessionStore`, with the same promises
(a version per conversation; a stale save raises
:class:`~conjure_async.ConversationConflictError` and changes nothing):

* :class:`MemoryStore`: this process only (tests, demos);
* :class:`SQLiteStore`: the embedded default, one file, several processes
  on one host;
* :class:`PostgresStore`: several hosts (``pip install 'conjure-async[postgres]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conjure_async._public import publish
from conjure_async.store._base import SessionStore, StoredConversation
from conjure_async.store._memory import MemoryStore
from conjure_async.store._sqlite import SQLiteStore

if TYPE_CHECKING:
    from conjure_async.store._postgres import PostgresStore

__all__ = ["MemoryStore", "PostgresStore", "SQLiteStore", "SessionStore", "StoredConversation"]

publish(__name__, {name: globals()[name] for name in __all__ if name in globals()})


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # asyncpg is imported only when it is used
        obj = importlib.import_module("conjure_async.store._postgres").PostgresStore
        publish(__name__, {name: obj})
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
