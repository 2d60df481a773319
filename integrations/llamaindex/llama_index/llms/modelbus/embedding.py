"""``ModelBusEmbedding``: LlamaIndex embeddings from any modelbus embedding model (or a gateway)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer

from modelbus.connection import (
    Connection,
    embeddable,
    embedding_params,
    endpoint_from_env,
    providers_without_keys,
)

if TYPE_CHECKING:
    from modelbus import AsyncClient, Client

__all__ = ["ModelBusEmbedding"]


class ModelBusEmbedding(BaseEmbedding):
    """Embeddings through modelbus.

    .. code-block:: python

        from llama_index.core import Settings
        from llama_index.llms.modelbus import ModelBusEmbedding

        Settings.embed_model = ModelBusEmbedding(model="openai/text-embedding-3-small")

    Queries are embedded with ``input_type="query"`` and texts with ``input_type="document"`` (for
    retrieval models that tell them apart; the others ignore it).
    """

    dimensions: int | None = Field(default=None, description="Shorter vectors, for models that support it.")
    input_types: bool = Field(default=True, description="Send input_type (query/document).")
    additional_kwargs: dict[str, Any] = Field(default_factory=dict, description="Provider-only parameters.")
    timeout: float | None = Field(default=None, description="Seconds per call, retries included.")
    max_retries: int | None = Field(default=None, description="Retries on retryable errors.")
    api_key: str | None = Field(
        default=None, exclude=True, description="Gateway virtual key or provider key."
    )
    base_url: str | None = Field(default=None, description="A modelbus gateway's OpenAI-compatible base URL.")
    providers: dict[str, dict[str, Any]] | None = Field(
        default=None, description="modelbus provider settings."
    )
    config: dict[str, Any] | str | None = Field(default=None, description="modelbus configuration.")

    _connection: Connection = PrivateAttr()

    def __init__(
        self,
        model: str | None = None,
        *,
        model_name: str | None = None,
        embed_batch_size: int = 100,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        name = model or model_name
        if not name:
            raise ValueError("ModelBusEmbedding needs a model, e.g. model='openai/text-embedding-3-small'")
        base_url, api_key = endpoint_from_env(kwargs.pop("base_url", None), kwargs.pop("api_key", None))
        super().__init__(
            model_name=name, embed_batch_size=embed_batch_size, base_url=base_url, api_key=api_key, **kwargs
        )
        self._connection = Connection(
            model=name,
            base_url=base_url,
            api_key=api_key,
            providers=self.providers,
            config=self.config,
            max_retries=self.max_retries,
            timeout=self.timeout,
            client=client,
            async_client=async_client,
        )

    @classmethod
    def class_name(cls) -> str:
        return "ModelBusEmbedding"

    @field_serializer("providers")
    def _providers_without_keys(
        self, value: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        return providers_without_keys(value)

    @property
    def connection(self) -> Connection:
        return self._connection

    def close(self) -> None:
        self._connection.close()

    async def aclose(self) -> None:
        await self._connection.aclose()

    def _params(self, input_type: Literal["query", "document"]) -> dict[str, Any]:
        return embedding_params(
            dimensions=self.dimensions,
            input_type=input_type if self.input_types else None,
            extra=self.additional_kwargs,
            timeout=self.timeout,
        )

    def _embed(self, texts: list[str], input_type: Literal["query", "document"]) -> list[list[float]]:
        client = self._connection.client
        return client.embed(self._connection.target(), embeddable(texts), **self._params(input_type)).vectors

    async def _aembed(self, texts: list[str], input_type: Literal["query", "document"]) -> list[list[float]]:
        client = self._connection.async_client
        response = await client.embed(
            self._connection.target(), embeddable(texts), **self._params(input_type)
        )
        return response.vectors

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._aembed([query], "query"))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text], "document")[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aembed([text], "document"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._aembed(texts, "document")
