"""``python -m examples.fastapi_service [--host H] [--port P] [--store FILE]``: serve it.

Offline (a scripted model running real Local-backend tools) unless
``ANTHROPIC_API_KEY`` is set, in which case every conversation talks to Claude.
Conversations are saved in a SQLite file (``--store``, else ``CONJURE_STORE``,
else ``conversations.db``): a restart continues them.
"""

from __future__ import annotations

import argparse

import anyio
import uvicorn

from conjure_async.store import SQLiteStore

from ..services.demo import default_backend_factory, model_factory_from_env, sqlite_store_from_env
from .app import create_app


async def serve(host: str, port: int, store_path: str | None = None) -> None:
    """Run the app under uvicorn until interrupted."""
    conversations = SQLiteStore(store_path) if store_path else sqlite_store_from_env()
    async with model_factory_from_env() as model_factory:
        app = create_app(
            model_factory, default_backend_factory(), idle_ttl=900, conversation_store=conversations
        )
        config = uvicorn.Config(app, host=host, port=port, lifespan="on", ws="none")
        print(f"conjure_async FastAPI example on http://{host}:{port}/")
        await uvicorn.Server(config).serve()


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--store", help="the conversations' SQLite file")
    args = parser.parse_args()
    anyio.run(serve, args.host, args.port, args.store)


main()
