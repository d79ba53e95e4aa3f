"""The store fixtures (each store, a real PostgreSQL server) for the conversation tests."""

from tests.store.conftest import postgres_dsn, postgres_server, store

__all__ = ["postgres_dsn", "postgres_server", "store"]
