"""modelbus-mistral: the conformance kit plus Mistral's own quirks, against a real FakeUpstream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from modelbus_mistral import mistral_tool_call_id, plugin, split_content

from modelbus import AsyncClient, Client
from modelbus.errors import RateLimitError, UnsupportedFeatureError
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec

KEY = "mistral-test-key-0123456789"
VALID_ID = re.compile(r"^[a-zA-Z0-9]{9}$")


class TestMistralConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"


# ---------------------------------------------------------------------------------------- helpers


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **kwargs: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        providers={"mistral": {"api_key": KEY, "base_url": upstream.url}},
        **{"max_retries": 0, **kwargs},
    )


def completion(content: Any = "ok", finish_reason: str = "stop") -> ResponseSpec:
    return ResponseSpec(
        json={
            "id": "cmpl-test",
            "object": "chat.completion",
            "model": "mistral-small-latest",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            "created": 1,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "prefix": False},
                    "finish_reason": finish_reason,
                }
            ],
        }
    )


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def call(call_id: str, name: str = "get_weather") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


# ---------------------------------------------------------------------------------------- tool-call ids


@pytest.mark.parametrize(
    "original",
    ["call_abc123", "toolu_01A09q90qw90lq917835lq9", "call_0", "abc", "a-b_c.d:e/f", "x" * 200, "ümlaut-id"],
)
def test_foreign_ids_become_valid_and_stable(original: str) -> None:
    rewritten = mistral_tool_call_id(original)
    assert VALID_ID.match(rewritten)
    assert mistral_tool_call_id(original) == rewritten  # deterministic across turns and processes


def test_valid_ids_are_kept() -> None:
    assert mistral_tool_call_id("V2bduoFbR") == "V2bduoFbR"
    assert mistral_tool_call_id("abcdEFGH1") == "abcdEFGH1"


def test_eight_character_mistral_id_is_repaired() -> None:
    """Mistral itself has been seen to mint 8-character ids, which it then rejects on replay."""
    assert VALID_ID.match(mistral_tool_call_id("V2bduoFb"))


def test_history_ids_rewritten_consistently_across_parallel_calls(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion())
    messages = [
        {"role": "user", "content": "Weather in Boston and Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_boston"), call("call_paris")]},
        {"role": "tool", "tool_call_id": "call_paris", "content": "18"},  # answers out of order
        {"role": "tool", "tool_call_id": "call_boston", "content": "21"},
        {"role": "assistant", "content": "Boston 21, Paris 18."},
        {"role": "user", "content": "And Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [call("call_boston")]},  # a reused id
        {"role": "tool", "tool_call_id": "call_boston", "content": "25"},
    ]
    with make_client(upstream) as client:
        client.chat("mistral/mistral-large-latest", messages, tools=TOOLS)
    sent = upstream.requests[-1].json["messages"]
    boston, paris = (c["id"] for c in sent[1]["tool_calls"])
    assert VALID_ID.match(boston)
    assert VALID_ID.match(paris)
    assert boston != paris
    assert sent[2]["tool_call_id"] == paris
    assert sent[3]["tool_call_id"] == boston
    assert sent[6]["tool_calls"][0]["id"] == boston
    assert sent[7]["tool_call_id"] == boston
    # the canonical request the caller holds is not modified
    assert messages[1]["tool_calls"][0]["id"] == "call_boston"


def test_rewritten_ids_do_not_collide_with_kept_ones(upstream: FakeUpstream, monkeypatch: Any) -> None:
    """If a foreign id hashes onto an id already in the conversation, another one is drawn."""
    import modelbus_mistral

    real = modelbus_mistral.mistral_tool_call_id

    def clashing(original: str, salt: int = 0) -> str:
        return "V2bduoFbR" if original == "call_x" and salt == 0 else real(original, salt)

    monkeypatch.setattr(modelbus_mistral, "mistral_tool_call_id", clashing)
    upstream.add("POST", "/chat/completions", completion())
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call("V2bduoFbR"), call("call_x")]},
        {"role": "tool", "tool_call_id": "V2bduoFbR", "content": "1"},
        {"role": "tool", "tool_call_id": "call_x", "content": "2"},
    ]
    with make_client(upstream) as client:
        client.chat("mistral/mistral-large-latest", messages, tools=TOOLS)
    sent = upstream.requests[-1].json["messages"]
    kept, moved = (c["id"] for c in sent[1]["tool_calls"])
    assert kept == "V2bduoFbR"
    assert moved != kept
    assert VALID_ID.match(moved)
    assert [sent[2]["tool_call_id"], sent[3]["tool_call_id"]] == [kept, moved]


def test_response_tool_call_ids_round_trip(upstream: FakeUpstream) -> None:
    """A Mistral-minted id from a response goes back unchanged in the next turn."""
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            json={
                "id": "cmpl-1",
                "object": "chat.completion",
                "model": "mistral-large-latest",
                "created": 1,
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "",
                            "tool_calls": [
                                {"id": "D681PevKs", "function": {"name": "get_weather", "arguments": "{}"}}
                            ],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
            }
        ),
    )
    with make_client(upstream) as client:
        first = client.chat("mistral/mistral-large-latest", "weather?", tools=TOOLS)
        history = [
            {"role": "user", "content": "weather?"},
            first.choices[0].message.to_assistant_message().model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "D681PevKs", "content": "sunny"},
        ]
        client.chat("mistral/mistral-large-latest", history, tools=TOOLS)
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "D681PevKs"
    assert sent[2]["tool_call_id"] == "D681PevKs"


# ---------------------------------------------------------------------------------------- parameters


def test_named_tool_choice_and_none_pass_through(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client:
        client.chat(
            "mistral/mistral-large-latest",
            "hi",
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        named = upstream.requests[-1].json["tool_choice"]
        client.chat("mistral/mistral-large-latest", "hi", tools=TOOLS, tool_choice="auto")
        auto = upstream.requests[-1].json["tool_choice"]
    assert named == {"type": "function", "function": {"name": "get_weather"}}
    assert auto == "auto"


def test_user_is_not_sent(upstream: FakeUpstream) -> None:
    """`user` is not in Mistral's schema: refused in strict mode, dropped in drop mode."""
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("mistral/mistral-small-latest", "hi", user="u-1")
    assert not upstream.requests
    with make_client(upstream, compat="drop") as client:
        client.chat("mistral/mistral-small-latest", "hi", user="u-1", seed=7)
    body = upstream.requests[-1].json
    assert "user" not in body
    assert body["random_seed"] == 7
    assert "seed" not in body


def test_streamed_request_has_no_stream_options(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse_text=(
                'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
                '[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],'
                '"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}\n\n'
                "data: [DONE]\n\n"
            )
        ),
    )
    with (
        make_client(upstream) as client,
        client.chat(
            "mistral/mistral-small-latest", "hi", stream=True, stream_options={"include_usage": True}
        ) as s,
    ):
        chunks = list(s)
    assert "stream_options" not in upstream.requests[-1].json
    assert chunks[-1].usage is not None
    assert not chunks[-1].usage.estimated
    assert chunks[-1].usage.total_tokens == 3


def test_rate_limit_is_retried(upstream: FakeUpstream) -> None:
    """rate_limited is retryable: with retries on, the next attempt succeeds."""
    upstream.add("POST", "/chat/completions", completion("second time lucky"))
    upstream.fail(
        429,
        body={"object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "code": "1300"},
        retry_after=0,
    )
    with make_client(upstream, max_retries=1) as client:
        response = client.chat("mistral/mistral-small-latest", "hi")
    assert response.text == "second time lucky"
    assert len(upstream.requests) == 2


def test_rate_limit_error_without_retries(upstream: FakeUpstream) -> None:
    upstream.fail(429, body={"object": "error", "message": "Rate limit exceeded", "type": "rate_limited"})
    with make_client(upstream) as client, pytest.raises(RateLimitError) as info:
        client.chat("mistral/mistral-small-latest", "hi")
    assert info.value.retryable
    assert info.value.provider_code == "rate_limited"


# ---------------------------------------------------------------------------------------- content chunks


def test_split_content() -> None:
    assert split_content("plain") == ("plain", None)
    assert split_content(None) == (None, None)
    assert split_content(
        [
            {"type": "thinking", "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"type": "text", "text": "answer"},
            {"type": "reference", "reference_ids": [1]},
        ]
    ) == ("answer", "ab")


def test_text_chunks_without_thinking(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion([{"type": "text", "text": "chunked"}]))
    with make_client(upstream) as client:
        response = client.chat("mistral/mistral-small-latest", "hi")
    assert response.text == "chunked"
    assert response.choices[0].message.reasoning_content is None


def test_reasoning_is_not_replayed(upstream: FakeUpstream) -> None:
    """Earlier turns' reasoning stays out of the request (Mistral takes no reasoning field)."""
    upstream.add("POST", "/chat/completions", completion())
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "thought"},
        {"role": "user", "content": "q2"},
    ]
    with make_client(upstream) as client:
        client.chat("mistral/magistral-medium-latest", messages)
    assert upstream.requests[-1].json["messages"][1] == {"role": "assistant", "content": "a"}


async def test_async_client(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion("async ok"))
    client = AsyncClient(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"mistral": {"api_key": KEY, "base_url": upstream.url}},
    )
    try:
        response = await client.chat("mistral/codestral-latest", "def f():")
    finally:
        await client.aclose()
    assert response.text == "async ok"


# ---------------------------------------------------------------------------------------- packaging


def test_model_table_shape() -> None:
    models = {m.id: m for m in plugin.provider_info.models}
    assert models["mistral-embed"].embedding_dimensions == 1024
    for model in models.values():
        if model.kind == "chat":
            assert "user" in model.unsupported_params, model.id
    assert plugin.provider_info.regions["default"].jurisdiction == "EU"


def test_entry_point_when_installed() -> None:
    try:
        dist = metadata.distribution("modelbus-mistral")
    except metadata.PackageNotFoundError:
        pytest.skip("modelbus-mistral is not installed")
    points = [ep for ep in dist.entry_points if ep.group == "modelbus"]
    assert [(ep.name, ep.value) for ep in points] == [("mistral", "modelbus_mistral:plugin")]
    assert dist.metadata.get_all("Requires-Dist") == ["modelbus>=0.1"]
