"""ChatModelBus in real LangChain programs (LCEL chains, a tool-calling loop), its metadata, and the
gateway wiring, against modelbus's deterministic fake upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_modelbus import ChatModelBus
from pydantic import BaseModel, Field

from modelbus.errors import AuthenticationError, UnsupportedFeatureError
from modelbus.testing import FakeUpstream

pytest.importorskip("modelbus_deepseek", reason="these tests call DeepSeek's plugin")

MODEL = "deepseek/deepseek-chat"


@pytest.fixture
def llm(upstream: FakeUpstream) -> Iterator[ChatModelBus]:
    model = ChatModelBus(
        model=MODEL, providers={"deepseek": {"api_key": "sk-test", "base_url": upstream.url}}, max_retries=0
    )
    yield model
    model.close()


@pytest.fixture
def gateway_llm(upstream: FakeUpstream) -> Iterator[ChatModelBus]:
    model = ChatModelBus(model=MODEL, base_url=upstream.url + "/v1", api_key="mb-virtual-key", max_retries=0)
    yield model
    model.close()


@tool
def get_weather(location: str) -> str:
    """Get the current weather at a location."""
    return f"It is sunny and 21 degrees in {location}."


@tool
def add(a: int, b: int) -> int:
    """Add two integers and return their sum."""
    return a + b


# ------------------------------------------------------------------------------ LCEL


def test_prompt_model_parser_chain(llm: ChatModelBus, upstream: FakeUpstream) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a terse assistant who answers in {language}."), ("human", "Translate: {text}")]
    )
    chain = prompt | llm | StrOutputParser()
    assert chain.invoke({"language": "French", "text": "good morning"}) == "You said: Translate: good morning"
    sent = upstream.requests[-1].json
    assert sent["model"] == "deepseek-chat"
    assert sent["messages"] == [
        {"role": "system", "content": "You are a terse assistant who answers in French."},
        {"role": "user", "content": "Translate: good morning"},
    ]
    streamed = list(chain.stream({"language": "French", "text": "good night"}))
    assert len(streamed) > 2  # token by token through the parser
    assert "".join(streamed) == "You said: Translate: good night"
    batch = chain.batch([{"language": "German", "text": "one"}, {"language": "German", "text": "two"}])
    assert batch == ["You said: Translate: one", "You said: Translate: two"]


async def test_async_chain_with_structured_output(llm: ChatModelBus) -> None:
    class Person(BaseModel):
        name: str = Field(description="the person's name")
        age: int = Field(description="age in years")

    chain = ChatPromptTemplate.from_template("Extract the person: {text}") | llm.with_structured_output(
        Person
    )
    person = await chain.ainvoke({"text": "'Zoë Ng' turned 42 last week"})
    assert person == Person(name="Zoë Ng", age=42)
    chunks = [chunk async for chunk in chain.astream({"text": "'Bo' is 7"})]
    assert chunks[-1] == Person(name="Bo", age=7)
    await llm.aclose()


def test_structured_output_include_raw_and_json_mode(llm: ChatModelBus) -> None:
    class Answer(BaseModel):
        answer: str
        confidence: float

    raw = llm.with_structured_output(Answer, include_raw=True).invoke("Say 'yes' with 0.9 confidence")
    assert raw["parsing_error"] is None
    assert raw["parsed"] == Answer(answer="yes", confidence=0.9)
    assert isinstance(raw["raw"], AIMessage)
    assert raw["raw"].tool_calls[0]["name"] == "Answer"
    data = llm.with_structured_output(method="json_mode").invoke(
        "Reply in JSON with keys 'city' and 'country'"
    )
    assert set(data) == {"city", "country"}


def test_json_schema_on_a_model_without_it_is_refused_by_modelbus(llm: ChatModelBus) -> None:
    class Answer(BaseModel):
        answer: str

    with pytest.raises(UnsupportedFeatureError, match="json_schema"):
        llm.with_structured_output(Answer, method="json_schema").invoke("hi")


# ------------------------------------------------------------------------------ tool loop


def run_tool_loop(
    model: ChatModelBus, question: str, tools: list[Any], *, limit: int = 4
) -> list[BaseMessage]:
    """The classic loop: call the model, run the tools it asks for, feed the results back."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [SystemMessage("Use the tools when they help."), HumanMessage(question)]
    for _ in range(limit):
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return messages
        messages.extend(by_name[call["name"]].invoke(call) for call in reply.tool_calls)
    raise AssertionError("the model never stopped calling tools")


def test_tool_calling_loop(llm: ChatModelBus, upstream: FakeUpstream) -> None:
    messages = run_tool_loop(llm, "What is the weather in Paris, France?", [add, get_weather])
    assert [type(m).__name__ for m in messages] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    call = messages[2].tool_calls[0]  # type: ignore[attr-defined]
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": "Paris, France"}
    assert isinstance(messages[3], ToolMessage)
    assert messages[3].tool_call_id == call["id"]
    assert messages[-1].content == "The get_weather returned It is sunny and 21 degrees in Paris, France.."
    last_request = upstream.requests[-1].json
    assert "tool_choice" not in last_request  # the model chose to call the tool by itself
    assert last_request["messages"][2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"location": "Paris, France"}',
    }
    assert last_request["messages"][3] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "It is sunny and 21 degrees in Paris, France.",
    }


def test_streamed_tool_call_chunks_and_forced_choice(llm: ChatModelBus) -> None:
    bound = llm.bind_tools([add, get_weather], tool_choice="add")
    chunks = list(bound.stream("Add 40 and 2"))
    fragments = [c for chunk in chunks for c in chunk.tool_call_chunks]
    assert fragments[0]["name"] == "add"
    assert fragments[0]["id"]
    assert len(fragments) > 2  # arguments arrive in pieces
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.tool_calls == [
        {"name": "add", "args": {"a": 40, "b": 2}, "id": fragments[0]["id"], "type": "tool_call"}
    ]
    assert full.response_metadata["finish_reason"] == "tool_calls"
    assert chunks[-1].chunk_position == "last"


async def test_async_tool_loop_in_chinese(llm: ChatModelBus) -> None:
    @tool
    def create_customer(customer_name: str) -> str:
        """Create a customer record."""
        return f"created {customer_name}"

    reply = await llm.bind_tools([create_customer]).ainvoke("请创建客户「北京星辰科技」 using the tool")
    assert reply.tool_calls[0]["args"] == {"customer_name": "北京星辰科技"}
    result = await create_customer.ainvoke(reply.tool_calls[0])
    final = await llm.bind_tools([create_customer]).ainvoke([HumanMessage("请创建客户"), reply, result])
    assert "北京星辰科技" in final.text
    await llm.aclose()


# ------------------------------------------------------------------------------ metadata


def test_response_metadata_and_usage(llm: ChatModelBus) -> None:
    message = llm.invoke("Hello")
    meta = message.response_metadata
    assert meta["model_name"] == "deepseek/deepseek-chat"
    assert meta["model_provider"] == "modelbus"
    assert meta["provider"] == "deepseek"
    assert meta["finish_reason"] == "stop"
    assert meta["cost"] > 0
    assert meta["cost_breakdown"]["price_source"].startswith("https://")
    assert meta["route"]["resolved"] == "deepseek/deepseek-chat"
    assert meta["route"]["attempts"][0]["outcome"] == "ok"
    usage = message.usage_metadata
    assert usage is not None
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"] == {"cache_read": 0, "cache_creation": 0}


def test_stream_puts_usage_and_metadata_on_the_last_chunk_only(llm: ChatModelBus) -> None:
    chunks = list(llm.stream("Write me 2 haikus."))
    assert all(c.usage_metadata is None and not c.response_metadata for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata is not None
    assert last.response_metadata["finish_reason"] == "stop"
    assert last.response_metadata["cost"] > 0
    assert last.response_metadata["route"]["resolved"] == MODEL


def test_reasoning_and_cache_details(upstream: FakeUpstream) -> None:
    reasoner = ChatModelBus(
        model="deepseek/deepseek-reasoner", providers={"deepseek": {"api_key": "k", "base_url": upstream.url}}
    )
    message = reasoner.invoke("Why is the sky blue?")
    assert message.additional_kwargs["reasoning_content"]
    assert message.usage_metadata["output_token_details"]["reasoning"] > 0  # type: ignore[index]
    assert any(b["type"] == "reasoning" for b in message.content_blocks)
    # the reasoning goes back on the next turn when DeepSeek wants it (a tool-call turn)
    long_prompt = "Context: " + "lorem ipsum dolor sit amet " * 300
    first = reasoner.invoke([SystemMessage(long_prompt), HumanMessage("one")])
    second = reasoner.invoke([SystemMessage(long_prompt), HumanMessage("two")])
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0  # type: ignore[index]
    assert second.usage_metadata["input_token_details"]["cache_read"] >= 1024  # type: ignore[index]
    assert second.response_metadata["cost"] < first.response_metadata["cost"]  # cache hits are cheaper


def test_n_generations_stop_and_per_call_model(llm: ChatModelBus, upstream: FakeUpstream) -> None:
    result = llm.generate([[HumanMessage("hello")]], n=2)
    assert [g.text for g in result.generations[0]] == ["You said: hello", "You said: hello"]
    assert llm.invoke("one two three", stop=[" three"]).content == "You said: one two"
    override = llm.invoke("hi", model="deepseek/deepseek-v4-flash")
    assert override.response_metadata["model_name"] == "deepseek/deepseek-v4-flash"
    assert upstream.requests[-1].json["model"] == "deepseek-v4-flash"


def test_modelbus_errors_surface_unchanged(upstream: FakeUpstream) -> None:
    llm = ChatModelBus(
        model=MODEL, providers={"deepseek": {"api_key": "k", "base_url": upstream.url}}, max_retries=0
    )
    upstream.fail(401, body={"error": {"message": "Authentication Fails", "type": "authentication_error"}})
    with pytest.raises(AuthenticationError):
        llm.invoke("hi")


def test_concurrent_first_calls_share_one_loaded_client(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """batch() runs its first calls in a thread pool: plugins must load once, before any of them
    (modelbus's PluginHost marks itself loaded before it is: a slow plugin makes that window wide)."""
    import time

    from modelbus.plugins import PluginHost

    collect = PluginHost._collect_providers

    def slow_collect(self: PluginHost, record: Any) -> None:
        time.sleep(0.05)
        collect(self, record)

    monkeypatch.setattr(PluginHost, "_collect_providers", slow_collect)
    for _ in range(2):
        llm = ChatModelBus(model=MODEL, base_url=upstream.url + "/v1", api_key="k")
        results = llm.batch([f"hi {n}" for n in range(8)], config={"max_concurrency": 8})
        assert [r.content for r in results] == [f"You said: hi {n}" for n in range(8)]
        llm.close()


# ------------------------------------------------------------------------------ gateway


def test_gateway_gets_the_model_id_unchanged_with_the_virtual_key(
    gateway_llm: ChatModelBus, upstream: FakeUpstream
) -> None:
    message = gateway_llm.invoke("Hello gateway")
    request = upstream.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer mb-virtual-key"
    assert request.json["model"] == "deepseek/deepseek-chat"
    assert message.response_metadata["model_name"] == "deepseek/deepseek-chat"
    assert message.response_metadata["provider"] == "gateway"
    list(gateway_llm.stream("Hello again"))
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


async def test_gateway_async_tools_and_unlisted_models(
    gateway_llm: ChatModelBus, upstream: FakeUpstream
) -> None:
    reply = await gateway_llm.bind_tools([get_weather]).ainvoke("What is the weather in Tokyo?")
    assert reply.tool_calls[0]["args"] == {"location": "Tokyo"}
    other = await gateway_llm.ainvoke("hi", model="some-team/fine-tune-v2")  # any id: the gateway decides
    assert upstream.requests[-1].json["model"] == "some-team/fine-tune-v2"
    assert other.response_metadata["model_name"] == "some-team/fine-tune-v2"
    await gateway_llm.aclose()


def test_gateway_chain_end_to_end(gateway_llm: ChatModelBus) -> None:
    chain = (
        ChatPromptTemplate.from_template("Summarize: {text}")
        | gateway_llm
        | StrOutputParser()
        | RunnableLambda(str.upper)
    )
    assert chain.invoke({"text": "modelbus"}) == "YOU SAID: SUMMARIZE: MODELBUS"


# ------------------------------------------------------------------------------ callbacks


def test_streaming_flag_routes_invoke_through_the_stream(upstream: FakeUpstream) -> None:
    llm = ChatModelBus(
        model=MODEL, streaming=True, providers={"deepseek": {"api_key": "k", "base_url": upstream.url}}
    )
    tokens: list[str] = []

    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    message = llm.invoke("stream this please", config={"callbacks": [Collect()]})
    assert upstream.requests[-1].json["stream"] is True
    assert message.content == "You said: stream this please"
    assert "".join(tokens) == message.content
    assert message.usage_metadata is not None


async def _collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


async def test_astream_events(llm: ChatModelBus) -> None:
    events = await _collect(llm.astream_events("Hello", version="v2"))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chat_model_start"
    assert "on_chat_model_stream" in kinds
    assert kinds[-1] == "on_chat_model_end"
    assert json.dumps(events[-1]["data"]["output"].usage_metadata)
    await llm.aclose()
