"""A VectorStoreIndex queried through a query engine, and a FunctionAgent, fully offline: both the
LLM and the embeddings are served by modelbus against the deterministic fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.node_parser import SentenceSplitter
from llama_index.llms.modelbus import ModelBus, ModelBusEmbedding

from modelbus.testing import FakeUpstream

pytest.importorskip("modelbus_deepseek", reason="the LLM is DeepSeek's")
pytest.importorskip("modelbus_openai", reason="the embeddings are OpenAI's")

DOCUMENTS = [
    Document(
        text="Cats are small carnivorous mammals. Cats love to eat fish and they sleep up to 16 hours a day.",
        metadata={"topic": "cats"},
    ),
    Document(
        text="The stock market fell sharply on Monday after the central bank raised interest rates.",
        metadata={"topic": "markets"},
    ),
    Document(
        text="Paris is the capital of France. The Eiffel Tower in Paris was finished in 1889.",
        metadata={"topic": "paris"},
    ),
    Document(
        text="Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
        metadata={"topic": "plants"},
    ),
]


@pytest.fixture
def models(upstream: FakeUpstream) -> Iterator[tuple[ModelBus, ModelBusEmbedding]]:
    llm = ModelBus(
        model="deepseek/deepseek-chat", providers={"deepseek": {"api_key": "k", "base_url": upstream.url}}
    )
    embed = ModelBusEmbedding(
        model="openai/text-embedding-3-small",
        providers={"openai": {"api_key": "k", "base_url": upstream.url}},
    )
    yield llm, embed
    llm.close()
    embed.close()


def build_index(embed: ModelBusEmbedding) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        DOCUMENTS, embed_model=embed, transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=0)]
    )


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("What do cats like to eat?", "cats"),
        ("When was the Eiffel Tower finished?", "paris"),
        ("Why did the stock market fall?", "markets"),
        ("How do plants use sunlight?", "plants"),
    ],
)
def test_vector_index_query_engine(
    models: tuple[ModelBus, ModelBusEmbedding], upstream: FakeUpstream, question: str, topic: str
) -> None:
    llm, embed = models
    index = build_index(embed)
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    response = engine.query(question)
    assert response.source_nodes[0].node.metadata["topic"] == topic  # retrieval ranked by meaning
    best = next(d for d in DOCUMENTS if d.metadata["topic"] == topic)
    # the answer comes from the LLM, whose prompt held the retrieved context and the question
    assert best.text in str(response)
    assert question in str(response)
    chat = [r for r in upstream.requests if r.path == "/chat/completions"]
    assert len(chat) == 1
    embeds = [r.json for r in upstream.requests if r.path == "/embeddings"]
    assert embeds[-1]["input"] == [question]


async def test_async_and_streaming_query_engine_with_settings(
    models: tuple[ModelBus, ModelBusEmbedding],
) -> None:
    llm, embed = models
    Settings.llm, Settings.embed_model = llm, embed
    try:
        index = build_index(embed)
        response = await index.as_query_engine(similarity_top_k=2).aquery("Where is the Eiffel Tower?")
        assert response.source_nodes[0].node.metadata["topic"] == "paris"
        assert "Eiffel Tower" in str(response)
        streaming = index.as_query_engine(streaming=True, similarity_top_k=1).query("What do cats eat?")
        text = "".join(streaming.response_gen)
        assert "Cats love to eat fish" in text
        retriever = index.as_retriever(similarity_top_k=4)
        ranked = [n.node.metadata["topic"] for n in await retriever.aretrieve("sunlight and green plants")]
        assert ranked[0] == "plants"
    finally:
        Settings.llm = None  # type: ignore[assignment]
        Settings.embed_model = None  # type: ignore[assignment]
    await llm.aclose()
    await embed.aclose()


async def test_function_agent_tool_round_trip(
    models: tuple[ModelBus, ModelBusEmbedding], upstream: FakeUpstream
) -> None:
    llm, _ = models

    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        return a * b

    agent = FunctionAgent(tools=[multiply], llm=llm, system_prompt="Use tools for arithmetic.")
    result = await agent.run("Please multiply 6 by 7 with the multiply tool.")
    assert str(result) == "The multiply returned 42."
    assert [c.tool_name for c in result.tool_calls] == ["multiply"]
    assert result.tool_calls[0].tool_kwargs == {"a": 6, "b": 7}
    last = upstream.requests[-1].json["messages"]
    assert last[-1] == {"role": "tool", "tool_call_id": result.tool_calls[0].tool_id, "content": "42"}
    await llm.aclose()


async def test_function_agent_through_the_gateway(upstream: FakeUpstream) -> None:
    llm = ModelBus(model="deepseek/deepseek-chat", base_url=upstream.url + "/v1", api_key="mb-virtual")

    def get_weather(location: str) -> str:
        """Get the current weather at a location."""
        return f"Sunny in {location}."

    result = await FunctionAgent(tools=[get_weather], llm=llm, streaming=True).run(
        "What is the weather in Oslo?"
    )
    assert str(result) == "The get_weather returned Sunny in Oslo.."
    requests = [r for r in upstream.requests if r.path == "/v1/chat/completions"]
    assert {r.json["model"] for r in requests} == {"deepseek/deepseek-chat"}
    assert {r.headers["authorization"] for r in requests} == {"Bearer mb-virtual"}
    await llm.aclose()
