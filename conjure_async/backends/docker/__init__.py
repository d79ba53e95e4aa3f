"""The Docker backend's implementation: one private module per concept.

Its public names are exported by :mod:`conjure_async.backends` (and read as
``conjure_async.backends.DockerBackend``); import them from there. Nothing
here imports ``aiodocker`` until an engine is first contacted, so the
``[docker]`` extra stays optional.

==================  =========================================================
``_backend.py``     :class:`DockerBackend`: the four skill tools in a container
``_config.py``      the container configuration, a value built from the options
``_container.py``   one container's life: created, started, prepared, removed
``_bash.py``        ``bash_tool``: one exec per command, a verified kill
``_files.py``       copying a reported file out of the container
``_scripts.py``     the scripts run inside the container
``_pool.py``        :class:`WarmPool`: started containers, ready to take
``_image.py``       the sandbox images (``Dockerfile`` here, an offline build)
``_sweep.py``       removing containers a crashed process left behind
``_api.py``         the engine boundary: the client, error translation, labels
==================  =========================================================
"""

from __future__ import annotations

__all__: list[str] = []
