"""``python -m examples.aiohttp_service [--host H] [--port P] [--store FILE]``: serve it.

Offline (a scripted model running real Local-backend tools) unless
``ANTHROPIC_API_KEY`` is set, in which case every conversation talks to Claude.
Conversations are saved in a SQLite file (``--store``, else ``CONJURE_STORE``,
else ``conversations.db``): a restart continues them, and several processes
on one file serve the same conversations.
"""

from __future__ import annotations

import argparse
import signal

import anyio

from conjure_async.store import SQLiteStore

from ..services import SessionStore
from ..services.demo import (
    default_backend_factory,
    describe_model,
    model_factory_from_env,
    session_factory,
    sqlite_store_from_env,
)
from .app import create_app, running


async def serve(host: str, port: int, store_path: str | None = None) -> None:
    """Open the stores, serve until SIGINT or SIGTERM, then close every session."""
    async with (
        model_factory_from_env() as model_factory,
        SQLiteStore(store_path) if store_path else sqlite_store_from_env() as conversations,
    ):
        make_session = session_factory(
            model_factory, default_backend_factory(), conversation_store=conversations
        )
        async with (
            SessionStore(make_session, idle_ttl=900) as store,
            running(
                create_app(store, model_info=describe_model(model_factory())), host, port
            ) as url,
        ):
            print(f"conjure_async aiohttp example on {url}/ (Ctrl-C stops it)")
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:  # stop cleanly: every session closes
                    break


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m examples.aiohttp_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--store", help="the conversations' SQLite file")
    args = parser.parse_args()
    anyio.run(serve, args.host, args.port, args.store)


main()
