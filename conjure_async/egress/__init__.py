"""Network policy for sandboxes: egress allow-lists and credentials injected on the way.

The public name is :class:`~conjure_async.backends.EgressPolicy` (exported by
:mod:`conjure_async.backends`, accepted by ``DockerBackend(egress=...)`` and
``LocalBackend(sandbox="bwrap", egress=...)``); its decisions stream out as
:class:`~conjure_async.events.EgressDecision` events. See
``docs/network-policy.md`` and ``docs/adr/0010-egress-proxy.md``.

==================  =========================================================
``_policy.py``      :class:`EgressPolicy`: entries, matching, injected headers
``_proxy.py``       the per-session proxy on unix sockets (tunnels, plain HTTP)
``_tls.py``         the per-session CA, leaf certificates, the upstream context
``_forwarder.py``   the in-sandbox forwarder (``127.0.0.1:3128`` to the socket)
``_runtime.py``     what a backend uses: proxy lifecycle, folders, decisions
==================  =========================================================
"""

from __future__ import annotations

__all__: list[str] = []
