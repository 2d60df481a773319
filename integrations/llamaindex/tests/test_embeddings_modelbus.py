"""ModelBusEmbedding: the BaseEmbedding contract, batching, async, gateway mode."""

from __future__ import annotations

import math

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.llms.modelbus import ModelBusEmbedding

from modelbus.testing import FakeUpstream

pytest.importorskip("modelbus_openai", reason="these tests call OpenAI's plugin")


def test_embedding_class() -> None:
    assert BaseEmbedding.__name__ in [b.__name__ for b in ModelBusEmbedding.__mro__]
    assert ModelBusEmbedding.class_name() == "ModelBusEmbedding"
    with pytest.raises(ValueError, match="needs a model"):
        ModelBusEmbedding()


def test_query_text_and_batches(upstream: FakeUpstream) -> None:
    embed = ModelBusEmbedding(
        model="openai/text-embedding-3-small",
        embed_batch_size=2,
        dimensions=16,
        providers={"openai": {"api_key": "k", "base_url": upstream.url}},
    )
    query = embed.get_query_embedding("cats eat fish")
    assert len(query) == 16
    assert math.isclose(sum(v * v for v in query), 1.0, abs_tol=1e-4)
    vectors = embed.get_text_embedding_batch(["cats eat fish", "dogs", "", "birds sing"])
    assert len(vectors) == 4
    assert vectors[0] == query  # the fake ignores input_type; a retrieval model would not
    bodies = [r.json for r in upstream.requests]
    assert [len(b["input"]) for b in bodies[1:]] == [2, 2]
    assert bodies[2]["input"] == [" ", "birds sing"]  # empty texts are sent as a space
    assert {b["dimensions"] for b in bodies} == {16}
    assert embed.to_dict()["model_name"] == "openai/text-embedding-3-small"
    embed.close()


async def test_async_embeddings_through_the_gateway(upstream: FakeUpstream) -> None:
    embed = ModelBusEmbedding(
        model="openai/text-embedding-3-large", base_url=upstream.url + "/v1", api_key="mb-k"
    )
    vectors = await embed.aget_text_embedding_batch(["a", "b", "c"])
    assert len(vectors) == 3
    assert await embed.aget_query_embedding("a") == vectors[0]
    request = upstream.requests[-1]
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == "Bearer mb-k"
    assert request.json["model"] == "openai/text-embedding-3-large"
    await embed.aclose()


def test_both_integrations_share_the_core_connection() -> None:
    """The connection logic lives once, in modelbus.connection, for LlamaIndex and LangChain alike."""
    from llama_index.llms.modelbus import base, embedding

    from modelbus.connection import Connection

    assert base.Connection is Connection
    assert embedding.Connection is Connection
