"""LlamaIndex through a modelbus gateway: a vector index queried by a query engine, and an agent.

Against a running gateway (OpenAI-compatible at http://localhost:4000/v1, a virtual key)::

    MODELBUS_API_KEY=mb-... python examples/gateway_rag.py
    python examples/gateway_rag.py --base-url http://localhost:4000/v1 --api-key mb-...

Without one, ``--offline`` starts modelbus's deterministic fake server (``modelbus[testing]``) and
plays the gateway, so the example runs anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Iterator

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.llms.modelbus import ModelBus, ModelBusEmbedding

DOCUMENTS = [
    Document(text="modelbus puts every LLM provider behind one Python interface, a gateway and a router."),
    Document(text="The modelbus gateway speaks the OpenAI API and checks virtual keys, budgets and limits."),
    Document(text="Cats sleep up to 16 hours a day and love to eat fish."),
]


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


@contextlib.contextmanager
def offline_gateway() -> Iterator[str]:
    """A local stand-in for the gateway: modelbus's FakeUpstream with its deterministic responder."""
    from modelbus.testing import FakeUpstream
    from modelbus.testing.responders import smart_openai_responder

    with FakeUpstream() as upstream:
        upstream.respond_with(smart_openai_responder())
        yield upstream.url + "/v1"


def run(base_url: str, api_key: str | None, model: str, embed_model: str) -> list[str]:
    llm = ModelBus(model=model, base_url=base_url, api_key=api_key)
    embed = ModelBusEmbedding(model=embed_model, base_url=base_url, api_key=api_key)
    lines = [f"context window: {llm.metadata.context_window}"]

    index = VectorStoreIndex.from_documents(DOCUMENTS, embed_model=embed)
    answer = index.as_query_engine(llm=llm, similarity_top_k=1).query("What does the gateway check?")
    lines.append(f"source: {answer.source_nodes[0].node.get_content()}")
    lines.append(f"answer: {str(answer)[:80]}")

    async def ask_agent() -> str:
        agent = FunctionAgent(tools=[multiply], llm=llm, system_prompt="Use tools for arithmetic.")
        result = await agent.run("Multiply 6 by 7 with the multiply tool.")
        await llm.aclose()  # the async connections belong to this event loop
        return str(result)

    lines.append(f"agent: {asyncio.run(ask_agent())}")
    llm.close()
    embed.close()
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("MODELBUS_BASE_URL", "http://localhost:4000/v1"))
    parser.add_argument("--api-key", default=os.environ.get("MODELBUS_API_KEY"))
    parser.add_argument("--model", default="deepseek/deepseek-chat")
    parser.add_argument("--embed-model", default="openai/text-embedding-3-small")
    parser.add_argument("--offline", action="store_true", help="play the gateway with a local fake server")
    args = parser.parse_args(argv)
    if args.offline:
        with offline_gateway() as url:
            lines = run(url, "mb-offline", args.model, args.embed_model)
    else:
        lines = run(args.base_url, args.api_key, args.model, args.embed_model)
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
