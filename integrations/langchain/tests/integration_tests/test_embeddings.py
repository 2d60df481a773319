"""langchain-tests' ``EmbeddingsIntegrationTests`` offline, plus retrieval that ranks by meaning."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_modelbus import ModelBusEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from modelbus.testing import FakeUpstream

pytest.importorskip("modelbus_openai", reason="the direct-mode suite calls OpenAI's plugin")


class TestModelBusEmbeddingsDirect(EmbeddingsIntegrationTests):
    upstream_url: str = ""

    @pytest.fixture(autouse=True)
    def _fake_upstream(self, modelbus_smart_upstream: FakeUpstream) -> None:
        type(self).upstream_url = modelbus_smart_upstream.url

    @property
    def embeddings_class(self) -> type[ModelBusEmbeddings]:
        return ModelBusEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "model": "openai/text-embedding-3-small",
            "providers": {"openai": {"api_key": "sk-test", "base_url": self.upstream_url}},
        }


class TestModelBusEmbeddingsGateway(TestModelBusEmbeddingsDirect):
    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "model": "openai/text-embedding-3-small",
            "base_url": self.upstream_url + "/v1",
            "api_key": "mb-k",
        }


def test_vector_store_retrieval_ranks_the_matching_document_first(upstream: FakeUpstream) -> None:
    embeddings = ModelBusEmbeddings(model="gateway-model/emb", base_url=upstream.url + "/v1", chunk_size=2)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(
        [
            Document("Cats love to eat fish and sleep in the sun.", metadata={"topic": "cats"}),
            Document("The stock market fell sharply on Monday.", metadata={"topic": "markets"}),
            Document("Paris is the capital of France.", metadata={"topic": "geography"}),
        ]
    )
    assert store.similarity_search("What do cats eat?", k=1)[0].metadata["topic"] == "cats"
    assert store.similarity_search("capital of France", k=1)[0].metadata["topic"] == "geography"
    bodies = [r.json for r in upstream.requests if r.path == "/v1/embeddings"]
    assert [len(b["input"]) for b in bodies[:2]] == [2, 1]  # chunk_size batches
    assert bodies[0]["model"] == "gateway-model/emb"
    embeddings.close()


async def test_async_embeddings_and_dimensions(upstream: FakeUpstream) -> None:
    embeddings = ModelBusEmbeddings(
        model="openai/text-embedding-3-small",
        dimensions=32,
        providers={"openai": {"api_key": "k", "base_url": upstream.url}},
    )
    vectors = await embeddings.aembed_documents(["alpha", "beta"])
    assert [len(v) for v in vectors] == [32, 32]
    assert await embeddings.aembed_query("alpha") == vectors[0]
    assert upstream.requests[-1].json["dimensions"] == 32
    await embeddings.aclose()
