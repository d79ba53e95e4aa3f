"""conjure_async served by aiohttp.web: ``python -m examples.aiohttp_service``.

See :func:`create_app` and ``docs/web-services.md``.
"""

from .app import STORE, create_app, running

__all__ = ["STORE", "create_app", "running"]
