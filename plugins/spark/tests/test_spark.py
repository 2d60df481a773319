"""modelbus-spark: the conformance kit plus Spark's own quirks, against a real Client and FakeUpstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelbus_spark import MAX_FUNCTION_NAME, plugin

from modelbus import Client
from modelbus.errors import (
    BadRequestError,
    ContentFilteredError,
    ModelbusError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    UnsupportedFeatureError,
)
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec

KEY = "key123456:secret123456"  # the "<APIKey>:<APISecret>" form
CHAT = "/v1/chat/completions"


class TestSparkConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **settings: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"spark": {"api_key": KEY, "base_url": upstream.url, **settings}},
    )


def envelope(message: dict[str, Any], **choice: Any) -> ResponseSpec:
    return ResponseSpec(
        json={
            "code": 0,
            "message": "Success",
            "sid": "cha000b0003@dx1905cd86d6bb86d552",
            "choices": [{"message": {"role": "assistant", **message}, "index": 0, **choice}],
            "usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10},
        }
    )


TOOL = {
    "type": "function",
    "function": {
        "name": "str2int",
        "parameters": {"type": "object", "properties": {"s": {"type": "string"}}},
    },
}

# -- endpoints and credentials ------------------------------------------------------------------------------


def test_one_region_at_the_host_root() -> None:
    info = plugin.provider_info
    assert info.regions["cn"].base_url == "https://spark-api-open.xf-yun.com"
    assert info.regions["cn"].jurisdiction == "CN"


def test_api_password_and_key_secret_forms_are_sent_as_bearer(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("spark/lite", "hi")
    with make_client(upstream, api_key="123456") as client:
        client.chat("spark/lite", "hi")
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer key123456:secret123456",
        "Bearer 123456",
    ]


def test_per_model_passwords(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "ok"}))
    passwords = {"4.0Ultra": "ultra-password", "lite": "lite-password"}
    with make_client(upstream, api_key=None, passwords=passwords) as client:
        client.chat("spark/4.0Ultra", "hi")
        client.chat("spark/lite", "hi")
        with pytest.raises(ModelbusError, match="SPARK_API_PASSWORD"):
            client.chat("spark/generalv3", "hi")  # no password for Pro and no api_key fallback
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer ultra-password",
        "Bearer lite-password",
    ]


def test_per_model_passwords_are_redacted(upstream: FakeUpstream) -> None:
    body = {"error": {"message": "invalid user ultra-password", "type": "api_error", "code": None}}
    upstream.fail(401, body=body)
    with (
        make_client(upstream, passwords={"4.0Ultra": "ultra-password"}) as client,
        pytest.raises(ModelbusError) as info,
    ):
        client.chat("spark/4.0Ultra", "hi")
    assert "ultra-password" not in str(info.value)


def test_spark_x_goes_to_v2(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v2/chat/completions", envelope({"content": "2"}))
    with make_client(upstream) as client:
        client.chat("spark/x1", "1+1=?")  # alias of spark-x
    assert upstream.requests[-1].path == "/v2/chat/completions"
    assert upstream.requests[-1].json["model"] == "spark-x"


def test_chat_path_per_model_is_data() -> None:
    """The base's ``chat_path_for`` reads ``model_chat_paths``: only X1.5 is under /v2."""
    paths = {model.id: plugin.chat_path_for(model) for model in plugin.provider_info.models}
    assert paths.pop("spark-x") == "/v2/chat/completions"
    assert set(paths.values()) == {CHAT}


def test_reasoning_effort_is_refused_on_spark_x(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("spark/spark-x", "hi", reasoning_effort="high")
    assert not upstream.requests


# -- tools -----------------------------------------------------------------------------------------------


def test_tool_calls_switch_only_with_tools(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("spark/generalv3.5", "hi")
        client.chat("spark/generalv3.5", "hi", tools=[TOOL])
        client.chat("spark/generalv3.5", "hi", tools=[TOOL], extra={"tool_calls_switch": False})
    plain, with_tools, overridden = (r.json for r in upstream.requests)
    assert "tool_calls_switch" not in plain
    assert with_tools["tool_calls_switch"] is True
    assert overridden["tool_calls_switch"] is False


def test_function_names_longer_than_32_are_refused(upstream: FakeUpstream) -> None:
    long_tool = {"type": "function", "function": {"name": "x" * (MAX_FUNCTION_NAME + 1)}}
    with make_client(upstream) as client, pytest.raises(BadRequestError, match="32 characters"):
        client.chat("spark/4.0Ultra", "hi", tools=[long_tool])
    assert not upstream.requests


def test_tools_need_a_tool_capable_version(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("spark/lite", "hi", tools=[TOOL])


# -- finish_reason and id --------------------------------------------------------------------------------


def test_a_sent_finish_reason_is_kept(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "很长"}, finish_reason="length"))
    with make_client(upstream) as client:
        choice = client.chat("spark/generalv3.5", "hi").choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("length", "length")


def test_missing_finish_reason_is_inferred_and_sid_becomes_the_id(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "ok"}))
    with make_client(upstream) as client:
        response = client.chat("spark/generalv3.5", "hi")
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].native_finish_reason is None
    assert response.id == "cha000b0003@dx1905cd86d6bb86d552"


def test_stream_with_a_finish_reason_gets_no_extra_one(upstream: FakeUpstream) -> None:
    sse = (
        'data:{"code":0,"message":"Success","sid":"s1","id":"s1","created":1,'
        '"choices":[{"delta":{"role":"assistant","content":"好"},"index":0}]}\n\n'
        'data:{"code":0,"message":"Success","sid":"s1","id":"s1","created":1,'
        '"choices":[{"delta":{"role":"assistant","content":""},"index":0,"finish_reason":"length"}],'
        '"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n'
        "data:[DONE]\n\n"
    )
    upstream.add("POST", CHAT, ResponseSpec(sse_text=sse))
    with make_client(upstream) as client, client.chat("spark/generalv3.5", "hi", stream=True) as stream:
        chunks = list(stream)
    finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finishes == ["length"]
    assert stream.response is not None
    assert stream.response.id == "s1"


# -- errors in the envelope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (10007, RateLimitError),
        (11203, RateLimitError),
        (10014, ContentFilteredError),
        (10019, ContentFilteredError),
        (11200, PermissionDeniedError),
        (10110, OverloadedError),
        (10163, BadRequestError),
        ("10013", ContentFilteredError),  # code as a string
    ],
)
def test_business_codes_with_http_200(
    upstream: FakeUpstream, code: Any, expected: type[ModelbusError]
) -> None:
    body = {"code": code, "message": "错误", "sid": "cha000b0009@dx1"}
    upstream.add("POST", CHAT, ResponseSpec(json=body))
    with make_client(upstream) as client, pytest.raises(ModelbusError) as info:
        client.chat("spark/generalv3.5", "hi")
    assert type(info.value) is expected, repr(info.value)
    assert info.value.provider_code == str(code)
    assert info.value.request_id == "cha000b0009@dx1"


def test_nested_error_variant(upstream: FakeUpstream) -> None:
    upstream.fail(400, body={"error": {"code": 10013, "message": "输入内容审核不通过"}})
    with make_client(upstream) as client, pytest.raises(ContentFilteredError) as info:
        client.chat("spark/generalv3.5", "hi")
    assert info.value.provider_code == "10013"


def test_health_probe_is_a_one_token_lite_chat(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, envelope({"content": "你"}))
    with make_client(upstream) as client:
        assert client.health("spark").ok
    request = upstream.requests[-1]
    assert request.json == {
        "model": "lite",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_health_probe_with_a_business_error_is_unhealthy(upstream: FakeUpstream) -> None:
    upstream.add("POST", CHAT, ResponseSpec(json={"code": 11201, "message": "daily limit", "sid": "cha2"}))
    with make_client(upstream) as client:
        status = client.health("spark")
    assert not status.ok
    assert type(status.error).__name__ == "QuotaExceededError"


def test_health_model_is_configurable(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v2/chat/completions", envelope({"content": "你"}))
    with make_client(upstream, health_model="spark-x", passwords={"spark-x": "x-password"}) as client:
        assert client.health("spark").ok
    request = upstream.requests[-1]
    assert request.json["model"] == "spark-x"
    assert request.headers["authorization"] == "Bearer x-password"


def test_health_model_alias_resolves_to_its_row(upstream: FakeUpstream) -> None:
    """``health_model = "x1"`` probes X1.5 like a chat to ``spark/x1`` would: its id, its /v2 path."""
    upstream.add("POST", "/v2/chat/completions", envelope({"content": "你"}))
    with make_client(upstream, health_model="x1", passwords={"spark-x": "x-password"}) as client:
        assert client.health("spark").ok
    request = upstream.requests[-1]
    assert (request.path, request.json["model"]) == ("/v2/chat/completions", "spark-x")
    assert request.headers["authorization"] == "Bearer x-password"


def test_json_error_body_on_a_stream_is_mapped(upstream: FakeUpstream) -> None:
    """A business error sent as a plain JSON body (no ``data:`` framing) in answer to a streamed request
    goes through the envelope check like a non-streamed answer, and raises the mapped error."""
    upstream.add(
        "POST",
        CHAT,
        ResponseSpec(body='{"code":11202,"message":"授权错误:秒级流控超限","sid":"cha1"}'),
        stream=True,
    )
    with make_client(upstream) as client, pytest.raises(ModelbusError) as info:
        list(client.chat("spark/generalv3.5", "hi", stream=True))
    assert type(info.value).__name__ == "RateLimitError"
    assert info.value.provider_code == "11202"
