"""LangChain integration for modelbus: ``ChatModelBus`` and ``ModelBusEmbeddings``."""

from __future__ import annotations

from importlib import metadata

from langchain_modelbus.chat_models import ChatModelBus
from langchain_modelbus.embeddings import ModelBusEmbeddings

try:
    __version__ = metadata.version("langchain-modelbus")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = ""

__all__ = ["ChatModelBus", "ModelBusEmbeddings", "__version__"]
