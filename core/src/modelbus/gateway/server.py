"""Run the gateway on uvicorn: graceful shutdown drains in-flight requests, then flushes the ledger."""

from __future__ import annotations

from typing import Any

from modelbus.config import ModelbusConfig
from modelbus.gateway.settings import GatewaySettings


def serve(config: ModelbusConfig, settings: GatewaySettings, **uvicorn_options: Any) -> None:
    import uvicorn

    from modelbus.gateway import logs
    from modelbus.gateway.app import create_app

    logs.configure()
    app = create_app(config, settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
        **uvicorn_options,
    )
