"""modelbus: one Python interface, one gateway and one router in front of every LLM provider.

Importing ``modelbus`` is cheap: names below load their modules on first access, and plugins load on
the first call that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelbus._version import __version__
from modelbus.errors import *  # noqa: F403  (light: no third-party imports)
from modelbus.errors import __all__ as _error_names
from modelbus.hookspecs import hookimpl

if TYPE_CHECKING:
    from modelbus.client import AsyncClient, Client, HealthStatus
    from modelbus.providers import OpenAICompatibleProvider, ProviderPlugin
    from modelbus.streaming import AsyncStream, Stream
    from modelbus.types import (
        ChatChunk,
        ChatRequest,
        ChatResponse,
        EmbeddingRequest,
        EmbeddingResponse,
        ModelInfo,
        ProviderInfo,
        Usage,
    )

_LAZY = {
    "Client": "modelbus.client",
    "AsyncClient": "modelbus.client",
    "HealthStatus": "modelbus.client",
    "Stream": "modelbus.streaming",
    "AsyncStream": "modelbus.streaming",
    "ProviderPlugin": "modelbus.providers",
    "OpenAICompatibleProvider": "modelbus.providers",
    "ChatRequest": "modelbus.types",
    "ChatResponse": "modelbus.types",
    "ChatChunk": "modelbus.types",
    "EmbeddingRequest": "modelbus.types",
    "EmbeddingResponse": "modelbus.types",
    "ModelInfo": "modelbus.types",
    "ProviderInfo": "modelbus.types",
    "Usage": "modelbus.types",
}

__all__ = [
    *_error_names,
    "AsyncClient",
    "AsyncStream",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Client",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "HealthStatus",
    "ModelInfo",
    "OpenAICompatibleProvider",
    "ProviderInfo",
    "ProviderPlugin",
    "Stream",
    "Usage",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelbus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
