"""modelbus-zhipu: the conformance kit plus GLM's own quirks, against a real Client and FakeUpstream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelbus_zhipu import SAMPLING_RANGES, jwt_token, plugin

from modelbus import Client
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ModelbusError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedFeatureError,
)
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec, SSEItem

KEY = "0123456789abcdef0123456789abcdef.qwPt8zwTestSecret"


class TestZhipuConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, path: str = "", compat: Any = "strict", **settings: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        compat=compat,
        providers={"zhipu": {"api_key": KEY, "base_url": upstream.url + path, **settings}},
    )


def completion(message: dict[str, Any], finish: str = "stop") -> ResponseSpec:
    return ResponseSpec(
        json={
            "id": "8239375684858666781",
            "request_id": "8239375684858666781",
            "created": 1703487403,
            "model": "glm-4-plus",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    )


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    body = upstream.requests[-1].json
    assert isinstance(body, dict)
    return body


# -- endpoint, regions, auth ----------------------------------------------------------------------------


def test_default_region_is_bigmodel_with_the_paas_v4_path() -> None:
    info = plugin.provider_info
    assert info.default_region == "cn"
    assert info.regions["cn"].base_url == "https://open.bigmodel.cn/api/paas/v4"
    assert info.regions["cn"].jurisdiction == "CN"
    assert info.regions["intl"].base_url == "https://api.z.ai/api/paas/v4"


def test_chat_goes_to_api_paas_v4_chat_completions(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/api/paas/v4/chat/completions", completion({"content": "你好"}))
    with make_client(upstream, "/api/paas/v4") as client:
        assert client.chat("zhipu/glm-4-flash", "你好").text == "你好"
    request = upstream.requests[-1]
    assert request.path == "/api/paas/v4/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_jwt_token_is_signed_with_the_key_secret() -> None:
    token = jwt_token(KEY, 180, now=1_700_000_000.0)
    header, payload, signature = token.split(".")
    assert json.loads(_b64decode(header)) == {"alg": "HS256", "sign_type": "SIGN"}
    assert json.loads(_b64decode(payload)) == {
        "api_key": "0123456789abcdef0123456789abcdef",
        "exp": 1_700_000_180_000,
        "timestamp": 1_700_000_000_000,
    }
    expected = hmac.new(b"qwPt8zwTestSecret", f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert _b64decode(signature) == expected


def test_jwt_auth_mode_sends_a_signed_token(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream, auth="jwt", jwt_ttl_seconds=60) as client:
        client.chat("zhipu/glm-4-flash", "hi")
    token = upstream.requests[-1].headers["authorization"].removeprefix("Bearer ")
    assert token.count(".") == 2
    assert "qwPt8zwTestSecret" not in token
    claims = json.loads(_b64decode(token.split(".")[1]))
    assert claims["api_key"] == "0123456789abcdef0123456789abcdef"
    assert claims["exp"] - claims["timestamp"] == 60_000


def test_jwt_needs_an_id_dot_secret_key(upstream: FakeUpstream) -> None:
    with (
        make_client(upstream, auth="jwt", api_key="no-dot-in-this-key") as client,
        pytest.raises(AuthenticationError, match=r"<id>\.<secret>") as info,
    ):
        client.chat("zhipu/glm-4-flash", "hi")
    assert "no-dot-in-this-key" not in str(info.value)
    assert not upstream.requests


def test_unknown_auth_mode_is_a_config_error(upstream: FakeUpstream) -> None:
    with make_client(upstream, auth="hmac") as client, pytest.raises(ConfigError, match="auth"):
        client.chat("zhipu/glm-4-flash", "hi")


def test_zhipu_api_key_env_var_is_read(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIPU_API_KEY", "id.from-env")
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with Client(
        plugins=[plugin], load_entrypoints=False, config={}, providers={"zhipu": {"base_url": upstream.url}}
    ) as client:
        client.chat("zhipu/glm-4-flash", "hi")
    assert upstream.requests[-1].headers["authorization"] == "Bearer id.from-env"


# -- request translation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("temperature", 1.7, 1.0),
        ("temperature", 2.0, 1.0),
        ("temperature", 0.0, 0.0),
        ("temperature", 0.75, 0.75),
        ("top_p", 0.0, 0.01),
        ("top_p", 0.005, 0.01),
        ("top_p", 0.95, 0.95),
        ("top_p", 1.0, 1.0),
    ],
)
def test_sampling_values_are_clamped_to_glm_ranges(
    upstream: FakeUpstream, field: str, given: float, expected: float
) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("zhipu/glm-4-plus", "hi", **{field: given})
    assert sent(upstream)[field] == expected
    low, high = SAMPLING_RANGES[field]
    assert low <= sent(upstream)[field] <= high


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        ("none", "disabled"),
        ("minimal", "disabled"),
        ("low", "enabled"),
        ("high", "enabled"),
        ("xhigh", "enabled"),
        ("max", "enabled"),
    ],
)
def test_reasoning_effort_maps_to_thinking_type(upstream: FakeUpstream, effort: str, thinking: str) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("zhipu/glm-5.1", "hi", reasoning_effort=effort)
    body = sent(upstream)
    assert body["thinking"] == {"type": thinking}
    assert "reasoning_effort" not in body


def test_thinking_in_extra_wins(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    thinking = {"type": "enabled", "clear_thinking": False}
    with make_client(upstream) as client:
        client.chat("zhipu/glm-5.1", "hi", reasoning_effort="minimal", extra={"thinking": thinking})
    assert sent(upstream)["thinking"] == thinking


def test_user_is_sent_as_user_id(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("zhipu/glm-4-plus", "hi", user="user-123456")
    body = sent(upstream)
    assert body["user_id"] == "user-123456"
    assert "user" not in body


def test_one_stop_sequence_passes_two_are_refused(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("zhipu/glm-4-plus", "hi", stop="END")
        assert sent(upstream)["stop"] == ["END"]
        with pytest.raises(BadRequestError, match="one stop sequence"):
            client.chat("zhipu/glm-4-plus", "hi", stop=["END", "STOP"])
    assert len(upstream.requests) == 1


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_tool_choice_none_withholds_the_tools(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("zhipu/glm-4-plus", "hi", tools=TOOLS, tool_choice="none")
    body = sent(upstream)
    assert "tools" not in body
    assert "tool_choice" not in body


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_choice_is_refused(upstream: FakeUpstream, choice: Any) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError) as info:
        client.chat("zhipu/glm-4-plus", "hi", tools=TOOLS, tool_choice=choice)
    assert info.value.param == "tool_choice"
    assert not upstream.requests


@pytest.mark.parametrize("param", ["seed", "presence_penalty", "frequency_penalty", "n"])
def test_parameters_glm_lacks_are_refused_or_dropped(upstream: FakeUpstream, param: str) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    value = 2 if param == "n" else 1
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("zhipu/glm-4-plus", "hi", **{param: value})
    assert not upstream.requests
    with make_client(upstream, compat="drop") as client:
        client.chat("zhipu/glm-4-plus", "hi", **{param: value})
    assert param not in sent(upstream)


def test_object_arguments_are_accepted(upstream: FakeUpstream) -> None:
    """z.ai's rendered schema types function.arguments as an object; accept it defensively."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "北京"}},
    }
    upstream.add(
        "POST", "/chat/completions", completion({"content": None, "tool_calls": [call]}, "tool_calls")
    )
    with make_client(upstream) as client:
        response = client.chat("zhipu/glm-4-plus", "北京天气", tools=TOOLS)
    calls = response.choices[0].message.tool_calls or []
    assert json.loads(calls[0].function.arguments) == {"city": "北京"}


# -- response normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("sensitive", "content_filter"),
        ("network_error", "error"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_glm_finish_reasons(upstream: FakeUpstream, native: str, canonical: str) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "部分"}, native))
    with make_client(upstream) as client:
        choice = client.chat("zhipu/glm-4-plus", "hi").choices[0]
    assert choice.finish_reason == canonical
    assert choice.native_finish_reason == native


def test_stream_reasoning_deltas(upstream: FakeUpstream) -> None:
    def chunk(delta: dict[str, Any], **extra: Any) -> SSEItem:
        return SSEItem(
            data={
                "id": "1",
                "created": 1,
                "model": "glm-5.1",
                "choices": [{"index": 0, "delta": delta, **extra}],
            }
        )

    items = [
        chunk({"role": "assistant", "reasoning_content": "先想"}),
        chunk({"role": "assistant", "reasoning_content": "一下。"}),
        chunk({"role": "assistant", "content": "好的"}),
        SSEItem(
            data={
                "id": "1",
                "created": 1,
                "model": "glm-5.1",
                "choices": [
                    {"index": 0, "finish_reason": "stop", "delta": {"role": "assistant", "content": ""}}
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
            }
        ),
        SSEItem(data="[DONE]"),
    ]
    upstream.add("POST", "/chat/completions", ResponseSpec(sse=items))
    with make_client(upstream) as client:
        response = client.chat("zhipu/glm-5.1", "hi", stream=True).until_done()
    message = response.choices[0].message
    assert (message.reasoning_content, message.content) == ("先想一下。", "好的")
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 9)
    assert not response.usage.estimated


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"code": 1302, "message": "并发数过高"}, RateLimitError),  # unwrapped, numeric code
        (429, {"error": {"code": "1303", "message": "您当前使用该API的频率过高"}}, RateLimitError),
        (429, {"error": {"code": "1113", "message": "您的账户已欠费,请充值后重试"}}, QuotaExceededError),
        (429, {"error": {"code": "1305", "message": "当前API请求过多,请稍后重试。"}}, OverloadedError),
        (401, {"error": {"code": "1003", "message": "Authentication Token expired"}}, AuthenticationError),
        (400, {"error": {"code": "1112", "message": "Your account has been locked"}}, PermissionDeniedError),
        (400, {"error": {"code": "1214", "message": "Invalid messages parameter"}}, BadRequestError),
        (
            400,
            {"error": {"code": "1212", "message": "Current model does not support SSE call"}},
            UnsupportedFeatureError,
        ),
    ],
)
def test_business_codes(
    upstream: FakeUpstream, status: int, body: dict[str, Any], expected: type[ModelbusError]
) -> None:
    upstream.fail(status, body=body)
    with make_client(upstream) as client, pytest.raises(ModelbusError) as info:
        client.chat("zhipu/glm-4-plus", "hi")
    assert type(info.value) is expected, repr(info.value)
    assert info.value.status_code == status
    assert info.value.retryable is expected.default_retryable


def test_zai_prices_from_config_apply_to_intl_calls(upstream: FakeUpstream) -> None:
    """The README recipe: Z.ai prices set as regional_prices.intl price intl calls; cn keeps the CNY list."""
    upstream.respond_with(lambda _request: completion({"content": "ok"}))
    intl = {
        "currency": "USD",
        "input": "1.4",
        "output": "4.4",
        "as_of": "2026-11-25",
        "source": "https://z.ai/x",
    }
    for region, currency in (("intl", "USD"), ("cn", "CNY")):
        client = Client(
            plugins=[plugin],
            load_entrypoints=False,
            config={"models": {"zhipu/glm-5.3": {"regional_prices": {"intl": intl}}}},
            max_retries=0,
            providers={"zhipu": {"api_key": KEY, "base_url": upstream.url, "region": region}},
        )
        with client:
            response = client.chat("zhipu/glm-5.3", "hi")
        assert response.cost_breakdown is not None
        assert response.cost_breakdown.price_currency == currency
