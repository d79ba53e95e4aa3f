"""conjure_async served by FastAPI: ``python -m examples.fastapi_service``.

See :func:`create_app` and ``docs/web-services.md``.
"""

from .app import MessageIn, create_app

__all__ = ["MessageIn", "create_app"]
