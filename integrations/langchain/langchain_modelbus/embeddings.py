"""``ModelBusEmbeddings``: LangChain embeddings on top of modelbus."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from modelbus.connection import Connection, embeddable, embedding_params

if TYPE_CHECKING:
    from modelbus import AsyncClient, Client

__all__ = ["ModelBusEmbeddings"]

_CONNECTION_LOCK = threading.Lock()


class ModelBusEmbeddings(BaseModel, Embeddings):
    """Embeddings from any modelbus embedding model (or a modelbus gateway).

    .. code-block:: python

        from langchain_modelbus import ModelBusEmbeddings

        embeddings = ModelBusEmbeddings(model="openai/text-embedding-3-small")
        vectors = embeddings.embed_documents(["hello", "world"])
        query = embeddings.embed_query("hi")

    Texts are sent in batches of ``chunk_size``; documents are embedded with ``input_type="document"``
    and queries with ``input_type="query"`` (retrieval models that tell them apart use it, the others
    ignore it).
    """

    model: str = Field(alias="model_name")
    """A modelbus embedding model id (``provider/model``) or alias."""
    dimensions: int | None = None
    """Shorter vectors, for models that support it."""
    chunk_size: int = 256
    """Texts per request."""
    input_types: bool = True
    """Send ``input_type`` (``query``/``document``)."""
    timeout: float | None = Field(default=None, alias="request_timeout")
    max_retries: int | None = None
    api_key: SecretStr | None = Field(default_factory=secret_from_env("MODELBUS_API_KEY", default=None))
    """The gateway's virtual key (env ``MODELBUS_API_KEY``); without ``base_url``, a key given in code
    is the key of the provider the model id names."""
    base_url: str | None = Field(
        default_factory=from_env("MODELBUS_BASE_URL", default=None), alias="api_base"
    )
    """A modelbus gateway's OpenAI-compatible base URL (env ``MODELBUS_BASE_URL``)."""
    providers: dict[str, dict[str, Any]] | None = None
    config: dict[str, Any] | str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Provider-only parameters (modelbus ``extra``)."""
    client: Any = Field(default=None, exclude=True)
    async_client: Any = Field(default=None, exclude=True)

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=())

    _connection: Connection | None = PrivateAttr(default=None)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            with _CONNECTION_LOCK:
                if self._connection is None:
                    explicit_key = "api_key" in self.model_fields_set or bool(self.base_url)
                    self._connection = Connection(
                        model=self.model,
                        base_url=self.base_url,
                        api_key=self.api_key.get_secret_value() if self.api_key and explicit_key else None,
                        providers=self.providers,
                        config=self.config,
                        max_retries=self.max_retries,
                        timeout=self.timeout,
                        client=self.client,
                        async_client=self.async_client,
                    )
        return self._connection

    @property
    def modelbus_client(self) -> Client:
        return self.connection.client

    @property
    def modelbus_async_client(self) -> AsyncClient:
        return self.connection.async_client

    def close(self) -> None:
        """Close the sync client's connections."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the async client's connections of the running event loop, and the sync ones."""
        await self.connection.aclose()

    def _params(self, input_type: Literal["query", "document"]) -> dict[str, Any]:
        return embedding_params(
            dimensions=self.dimensions,
            input_type=input_type if self.input_types else None,
            extra=self.model_kwargs,
            timeout=self.timeout,
        )

    def _batches(self, texts: list[str]) -> list[list[str]]:
        cleaned = embeddable(texts)
        return [cleaned[i : i + self.chunk_size] for i in range(0, len(cleaned), self.chunk_size)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            response = self.connection.client.embed(
                self.connection.target(), batch, **self._params("document")
            )
            vectors.extend(response.vectors)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        response = self.connection.client.embed(
            self.connection.target(), embeddable([text]), **self._params("query")
        )
        return response.vectors[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            response = await self.connection.async_client.embed(
                self.connection.target(), batch, **self._params("document")
            )
            vectors.extend(response.vectors)
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        response = await self.connection.async_client.embed(
            self.connection.target(), embeddable([text]), **self._params("query")
        )
        return response.vectors[0]
