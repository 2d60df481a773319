"""Run the gateway on uvicorn: graceful shutdown drains in-flight requests, then flushes the ledger."""

from __future__ import annotations

import gc
from typing import Any

from modelbus.config import ModelbusConfig
from modelbus.gateway.settings import GatewaySettings

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Fewer cyclic-GC passes for a request-serving process: everything loaded so far (modules, model
    tables, the app) is frozen out of collection, and the youngest generation is collected every
    50,000 net allocations instead of 700. Reference counting still frees almost everything a request
    allocates at once; the cycle collector runs less often over less. bench/gateway.py: about 10%
    less CPU per request at 64 connections, RSS flat over 20k requests."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(config: ModelbusConfig, settings: GatewaySettings, **uvicorn_options: Any) -> None:
    import uvicorn

    from modelbus.gateway import logs
    from modelbus.gateway.app import create_app

    logs.configure()
    app = create_app(config, settings)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
        **uvicorn_options,
    )
