"""LangChain through a modelbus gateway: a chain, a tool call and structured output.

Against a running gateway (OpenAI-compatible at http://localhost:4000/v1, a virtual key)::

    MODELBUS_API_KEY=mb-... python examples/gateway.py
    python examples/gateway.py --base-url http://localhost:4000/v1 --api-key mb-... --model openai/gpt-5.4

Without one, ``--offline`` starts modelbus's deterministic fake server (``modelbus[testing]``) and
plays the gateway, so the example runs anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_modelbus import ChatModelBus
from pydantic import BaseModel, Field


@tool
def get_weather(location: str) -> str:
    """Get the current weather at a location."""
    return f"It is sunny in {location}."


class Movie(BaseModel):
    """A movie."""

    title: str = Field(description="the title")
    year: int = Field(description="the release year")


@contextlib.contextmanager
def offline_gateway() -> Iterator[str]:
    """A local stand-in for the gateway: modelbus's FakeUpstream with its deterministic responder."""
    from modelbus.testing import FakeUpstream
    from modelbus.testing.responders import smart_openai_responder

    with FakeUpstream() as upstream:
        upstream.respond_with(smart_openai_responder())
        yield upstream.url + "/v1"


def run(base_url: str, api_key: str | None, model: str) -> list[str]:
    llm = ChatModelBus(model=model, base_url=base_url, api_key=api_key, temperature=0)
    lines = []

    chain = ChatPromptTemplate.from_template("Say hello to {name} in one sentence.") | llm | StrOutputParser()
    lines.append(f"chain: {chain.invoke({'name': 'Ada'})}")

    reply = llm.bind_tools([get_weather]).invoke("What is the weather in Lisbon?")
    for call in reply.tool_calls:
        lines.append(f"tool call: {call['name']}({call['args']}) -> {get_weather.invoke(call['args'])}")

    movie = llm.with_structured_output(Movie, method="function_calling").invoke(
        "Name the movie 'Alien' released in 1979."
    )
    lines.append(f"structured: {movie!r}")

    message = llm.invoke("Thanks!")
    usage = message.usage_metadata or {}
    lines.append(
        f"usage: {usage.get('input_tokens')} in / {usage.get('output_tokens')} out, "
        f"model {message.response_metadata['model_name']}"
    )
    llm.close()
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("MODELBUS_BASE_URL", "http://localhost:4000/v1"))
    parser.add_argument("--api-key", default=os.environ.get("MODELBUS_API_KEY"))
    parser.add_argument("--model", default="deepseek/deepseek-chat")
    parser.add_argument("--offline", action="store_true", help="play the gateway with a local fake server")
    args = parser.parse_args(argv)
    if args.offline:
        with offline_gateway() as url:
            lines = run(url, "mb-offline", args.model)
    else:
        lines = run(args.base_url, args.api_key, args.model)
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
