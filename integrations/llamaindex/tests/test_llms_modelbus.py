"""ModelBus (LlamaIndex LLM): the ecosystem's class check, chat/complete in all four flavours, tools,
structured output and metadata, against modelbus's deterministic fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.modelbus import ModelBus
from llama_index.llms.modelbus.base import _message_to_modelbus
from pydantic import BaseModel, Field

from modelbus.errors import UnsupportedFeatureError
from modelbus.testing import FakeUpstream
from modelbus.types import ChatRequest

pytest.importorskip("modelbus_deepseek", reason="these tests call DeepSeek's plugin")

MODEL = "deepseek/deepseek-chat"


def test_llm_class() -> None:
    names_of_base_classes = [b.__name__ for b in ModelBus.__mro__]
    assert BaseLLM.__name__ in names_of_base_classes
    assert FunctionCallingLLM.__name__ in names_of_base_classes


@pytest.fixture
def llm(upstream: FakeUpstream) -> Iterator[ModelBus]:
    model = ModelBus(
        model=MODEL, providers={"deepseek": {"api_key": "sk-test", "base_url": upstream.url}}, max_retries=0
    )
    yield model
    model.close()


def add(a: int, b: int) -> int:
    """Add two integers and return their sum."""
    return a + b


def get_weather(location: str) -> str:
    """Get the current weather at a location."""
    return f"Sunny in {location}."


# ------------------------------------------------------------------------------ metadata


def test_metadata_comes_from_the_model_table() -> None:
    meta = ModelBus(model=MODEL).metadata
    assert meta.context_window == 1_000_000
    assert meta.is_chat_model is True
    assert meta.is_function_calling_model is True
    assert meta.model_name == MODEL
    assert ModelBus(model="openai/gpt-4.1", max_tokens=500).metadata.context_window == 1_047_576
    assert ModelBus(model="openai/gpt-4.1", max_tokens=500).metadata.num_output == 500
    assert ModelBus(model=MODEL, context_window=4096).metadata.context_window == 4096
    # gateway mode: the local table when the provider plugin is installed, else the gateway's row
    assert ModelBus(model=MODEL, base_url="http://localhost:4000/v1").metadata.context_window == 1_000_000
    assert (
        ModelBus(model="team/custom", base_url="http://localhost:4000/v1").metadata.context_window == 128_000
    )


def test_model_info_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ModelBus(model="team/custom", base_url="http://localhost:4000/v1")
    info = llm.model_info()
    assert info is not None
    assert info.context_window == 128_000
    monkeypatch.setattr(type(llm.connection), "_resolve", lambda *_: pytest.fail("looked up again"))
    assert llm.model_info() is info
    assert llm.metadata.context_window == 128_000


def test_metadata_knows_models_without_tools() -> None:
    pytest.importorskip("modelbus_openai")
    assert ModelBus(model="openai/text-embedding-3-small").metadata.is_function_calling_model is False


def test_serialization_keeps_keys_out(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ModelBus(
        model=MODEL, api_key="sk-1", providers={"deepseek": {"api_key": "sk-2", "region": "default"}}
    )
    data = llm.to_dict()
    assert "sk-1" not in json.dumps(data)
    assert "sk-2" not in json.dumps(data)
    assert data["class_name"] == "ModelBus"
    assert data["providers"] == {"deepseek": {"region": "default"}}


def test_gateway_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELBUS_BASE_URL", "http://localhost:4000/v1")
    monkeypatch.setenv("MODELBUS_API_KEY", "mb-virtual")
    llm = ModelBus(model=MODEL)
    assert llm.connection.target() == "gateway/deepseek/deepseek-chat"
    assert llm.modelbus_client.runtime.provider_overrides == {
        "gateway": {"base_url": "http://localhost:4000/v1", "api_key": "mb-virtual"}
    }


# ------------------------------------------------------------------------------ chat and complete


def test_chat_complete_and_streams(llm: ModelBus, upstream: FakeUpstream) -> None:
    response = llm.chat(
        [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hello")]
    )
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == "You said: Hello"
    assert response.additional_kwargs["prompt_tokens"] > 0
    assert response.additional_kwargs["cost"] > 0
    assert response.additional_kwargs["provider"] == "deepseek"
    assert response.raw.usage.total_tokens == response.additional_kwargs["total_tokens"]
    assert upstream.requests[-1].json["messages"][0] == {"role": "system", "content": "Be brief."}

    assert llm.complete("Paul Graham is").text == "You said: Paul Graham is"

    chunks = list(llm.stream_chat([ChatMessage(role="user", content="one two three")]))
    assert "".join(c.delta or "" for c in chunks) == "You said: one two three"
    assert chunks[-1].message.content == "You said: one two three"
    assert chunks[-1].additional_kwargs["completion_tokens"] > 0

    pieces = list(llm.stream_complete("four five"))
    assert pieces[-1].text == "You said: four five"
    assert len(pieces) > 2


async def test_async_chat_complete_and_streams(llm: ModelBus) -> None:
    response = await llm.achat([ChatMessage(role="user", content="Hello")])
    assert response.message.content == "You said: Hello"
    assert (await llm.acomplete("hi")).text == "You said: hi"
    deltas = [r.delta async for r in await llm.astream_chat([ChatMessage(role="user", content="a b c")])]
    assert "".join(d or "" for d in deltas) == "You said: a b c"
    pieces = [piece async for piece in await llm.astream_complete("x y")]
    assert pieces[-1].text == "You said: x y"
    await llm.aclose()


def test_system_prompt_and_call_kwargs(upstream: FakeUpstream) -> None:
    llm = ModelBus(
        model=MODEL,
        system_prompt="You are terse.",
        temperature=0.3,
        max_tokens=64,
        additional_kwargs={"seed": 7, "logprobs": False},
        providers={"deepseek": {"api_key": "k", "base_url": upstream.url}},
    )
    assert llm.complete("Hi", stop=["zzz"]).text == "You said: Hi"
    sent = upstream.requests[-1].json
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]  # complete() is raw, as in LlamaIndex
    assert (sent["temperature"], sent["max_tokens"], sent["seed"], sent["logprobs"]) == (0.3, 64, 7, False)
    assert sent["stop"] == ["zzz"]
    assert llm.predict(PromptTemplate("Hi {name}"), name="Bo") == "You said: Hi Bo"  # predict() adds it
    assert upstream.requests[-1].json["messages"][0] == {"role": "system", "content": "You are terse."}


def test_reasoning_becomes_a_thinking_block(upstream: FakeUpstream) -> None:
    llm = ModelBus(
        model="deepseek/deepseek-reasoner", providers={"deepseek": {"api_key": "k", "base_url": upstream.url}}
    )
    response = llm.chat([ChatMessage(role="user", content="Why is the sky blue?")])
    assert response.message.blocks[0].block_type == "thinking"
    assert response.additional_kwargs["reasoning_tokens"] > 0
    streamed = list(llm.stream_chat([ChatMessage(role="user", content="Why?")]))
    assert any(r.additional_kwargs.get("thinking_delta") for r in streamed)
    assert streamed[-1].message.blocks[0].block_type == "thinking"


# ------------------------------------------------------------------------------ tools


def test_predict_and_call(llm: ModelBus, upstream: FakeUpstream) -> None:
    tools = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=get_weather)]
    output = llm.predict_and_call(tools, "What is 2 plus 40? Use the add tool.")
    assert output.response == "42"
    assert output.sources[0].tool_name == "add"
    assert output.sources[0].raw_input == {"args": (), "kwargs": {"a": 2, "b": 40}}
    assert upstream.requests[-1].json["tool_choice"] == "auto"
    weather = llm.predict_and_call(tools, "What is the weather in Rome, Italy?")
    assert weather.response == "Sunny in Rome, Italy."


async def test_apredict_and_call_and_chat_with_tools(llm: ModelBus) -> None:
    tool = FunctionTool.from_defaults(fn=get_weather)
    output = await llm.apredict_and_call([tool], "Weather in 'São Paulo'?")
    assert output.response == "Sunny in São Paulo."
    response = await llm.achat_with_tools([tool], "Hello!", tool_required=True)
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "get_weather"
    no_call = llm.chat_with_tools([tool], "Hello!")
    assert llm.get_tool_calls_from_response(no_call, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(no_call)
    await llm.aclose()


def test_streamed_tool_calls_and_a_tool_round_trip(llm: ModelBus, upstream: FakeUpstream) -> None:
    tool = FunctionTool.from_defaults(fn=add)
    chunks = list(llm.stream_chat_with_tools([tool], "Add 3 and 4", tool_required=True))
    (selection,) = llm.get_tool_calls_from_response(chunks[-1])
    assert (selection.tool_name, selection.tool_kwargs) == ("add", {"a": 3, "b": 4})
    history = [ChatMessage(role="user", content="Add 3 and 4"), chunks[-1].message]
    history.append(
        ChatMessage(
            role="tool",
            content=str(tool(**selection.tool_kwargs)),
            additional_kwargs={"tool_call_id": selection.tool_id},
        )
    )
    final = llm.chat_with_tools([tool], chat_history=history)
    assert final.message.content == "The add returned 7."
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 3, "b": 4}'}
    assert sent[2] == {"role": "tool", "tool_call_id": selection.tool_id, "content": "7"}


def test_named_tool_choice_and_single_call_validation(llm: ModelBus) -> None:
    tools = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=get_weather)]
    response = llm.chat_with_tools(tools, "Hi there", tool_choice="get_weather")
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "get_weather"
    response.message.blocks.append(ToolCallBlock(tool_call_id="x", tool_name="add", tool_kwargs={}))
    trimmed = llm._validate_chat_with_tools_response(response, tools)
    assert len(llm.get_tool_calls_from_response(trimmed)) == 1
    with pytest.raises(ValueError, match="not among the tools"):
        llm.chat_with_tools(tools, "Hi", tool_choice="nope")


# ------------------------------------------------------------------------------ structured output


class Song(BaseModel):
    """A song."""

    title: str = Field(description="the song title")
    length_seconds: int = Field(description="length in seconds")


class Album(BaseModel):
    """An album with songs."""

    name: str
    artist: str
    songs: list[Song]


def test_structured_predict(llm: ModelBus) -> None:
    prompt = PromptTemplate(
        "Make an album called {name} by {artist} with the song {song} of {length} seconds."
    )
    album = llm.structured_predict(Album, prompt, name="'Blue'", artist="'Joni'", song="'River'", length=240)
    assert album == Album(name="Blue", artist="Joni", songs=[Song(title="River", length_seconds=240)])


async def test_astructured_predict_and_structured_llm(llm: ModelBus) -> None:
    song = await llm.astructured_predict(
        Song, PromptTemplate("A song named {t} lasting {n} seconds"), t="'Hey'", n=99
    )
    assert song == Song(title="Hey", length_seconds=99)
    structured = llm.as_structured_llm(Song)
    response = await structured.achat([ChatMessage(role="user", content="Song 'Yo' of 12 seconds")])
    assert response.raw == Song(title="Yo", length_seconds=12)
    await llm.aclose()


# ------------------------------------------------------------------------------ messages


def test_messages_convert_to_modelbus_shapes() -> None:
    messages = [
        ChatMessage(role="system", content="sys"),
        ChatMessage(
            role="user", blocks=[TextBlock(text="look"), ImageBlock(url="https://example.com/a.png")]
        ),
        ChatMessage(role="user", blocks=[ImageBlock(image=b"\x89PNG", image_mimetype="image/png")]),
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="c1", tool_name="add", tool_kwargs={"a": 1, "b": "二"})],
        ),
        ChatMessage(role="tool", content="3", additional_kwargs={"tool_call_id": "c1"}),
        ChatMessage(
            role="assistant",
            content="",
            additional_kwargs={
                "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
            },
        ),
        ChatMessage(role="tool", content="ok", additional_kwargs={"tool_call_id": "c2"}),
        ChatMessage(role="assistant", content="done"),
    ]
    wire = [_message_to_modelbus(m) for m in messages]
    assert wire[1]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    assert wire[2]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert wire[3] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": "二"}'}}
        ],
    }
    assert wire[4] == {"role": "tool", "tool_call_id": "c1", "content": "3"}
    assert wire[5]["tool_calls"][0]["id"] == "c2"
    ChatRequest.model_validate({"model": "x/y", "messages": wire})
    with pytest.raises(ValueError, match="tool_call_id"):
        _message_to_modelbus(ChatMessage(role="tool", content="x"))


def test_unsupported_features_are_modelbus_errors(llm: ModelBus) -> None:
    image = ChatMessage(
        role="user", blocks=[TextBlock(text="what is this?"), ImageBlock(url="https://example.com/a.png")]
    )
    with pytest.raises(UnsupportedFeatureError, match="image inputs"):  # deepseek-chat has no vision
        llm.chat([image])
