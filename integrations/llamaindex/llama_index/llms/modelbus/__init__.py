"""LlamaIndex integration for modelbus: the ``ModelBus`` LLM and ``ModelBusEmbedding``."""

from llama_index.llms.modelbus.base import ModelBus
from llama_index.llms.modelbus.embedding import ModelBusEmbedding

__all__ = ["ModelBus", "ModelBusEmbedding"]
