"""The reference captioning server: HTTP contract v1 over a ``Captioner``, with dynamic batching,
readiness and draining, Prometheus metrics, a safety filter and fault injection.

Importing this package is light; torch and the web stack load with ``create_app``/``run_server``.
"""

from __future__ import annotations

__all__ = ["create_app", "run_server", "start_server", "ServerSettings"]


def __getattr__(name: str):
    if name == "create_app":
        from reference_model.server.app import create_app

        return create_app
    if name == "run_server":
        from reference_model.server.host import run_server

        return run_server
    if name == "start_server":
        from reference_model.server.launch import start_server

        return start_server
    if name == "ServerSettings":
        from reference_model.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(name)
