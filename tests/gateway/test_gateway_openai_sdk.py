"""The gateway on a real port, spoken to by the real openai SDK (sync, async, streaming, tools) and httpx."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from harness import GatewayThread

from modelbus.testing import FakeUpstream, ResponseSpec, SSEItem

MODEL = "deepseek/deepseek-chat"


def sdk(gateway: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def test_plain_chat_with_the_openai_sdk(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    key = gateway.create_key(team="research")
    completion = sdk(gateway, key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=0.2
    )
    assert completion.choices[0].message.content == "Hello from the upstream."
    assert completion.usage is not None
    assert completion.usage.total_tokens == 15
    assert completion.model == "deepseek-chat"
    sent = upstream.requests[-1]
    assert sent.json["model"] == "deepseek-chat"
    assert (
        sent.headers["authorization"] == "Bearer sk-upstream-provider-key-abcdef123456"
    )  # never the caller's key


def test_streaming_with_include_usage(gateway: GatewayThread) -> None:
    client = sdk(gateway, gateway.create_key())
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the upstream."
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    # without include_usage there is no usage chunk (clients that index choices[0] keep working)
    plain = list(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert all(c.choices for c in plain)


async def test_async_sdk_concurrently(gateway: GatewayThread) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.create_key(), max_retries=0)
    results = await asyncio.gather(
        *(
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"hi {n}"}])
            for n in range(20)
        )
    )
    assert {r.choices[0].message.content for r in results} == {"Hello from the upstream."}
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "Hello from the upstream."
    await client.close()


TOOL_CALL = {
    "id": "chatcmpl-t",
    "object": "chat.completion",
    "created": 1,
    "model": "deepseek-chat",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tools_round_trip(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", ResponseSpec(json=TOOL_CALL), stream=False)
    client = sdk(gateway, gateway.create_key())
    first = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="auto",
    )
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.choices[0].finish_reason == "tool_calls"
    assert upstream.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_call(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    def delta(d: dict, finish: str | None = None) -> SSEItem:
        return SSEItem(
            data={
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "deepseek-chat",
                "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
            }
        )

    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                delta(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ],
                    }
                ),
                delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
                delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                delta({}, "tool_calls"),
                SSEItem(
                    data={
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "deepseek-chat",
                        "choices": [],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
                    }
                ),
                SSEItem(data="[DONE]"),
            ]
        ),
        stream=True,
    )
    client = sdk(gateway, gateway.create_key())
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "?"}], tools=[WEATHER], stream=True
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_passes_through(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
        },
    }
    sdk(gateway, gateway.create_key()).chat.completions.create(
        model="openai/gpt-5.4-mini", messages=[{"role": "user", "content": "x?"}], response_format=fmt
    )
    assert upstream.requests[-1].json["response_format"]["json_schema"]["name"] == "answer"


def test_extra_body_reaches_the_provider(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    sdk(gateway, gateway.create_key()).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "x"}],
        extra_body={"top_k": 5, "thinking": {"type": "enabled"}},
    )
    sent = upstream.requests[-1].json
    assert sent["top_k"] == 5
    assert sent["thinking"] == {"type": "enabled"}


def test_embeddings(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/embeddings",
        ResponseSpec(
            json={
                "object": "list",
                "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": i, "embedding": [0.1 * i, 0.2]} for i in range(2)],
                "usage": {"prompt_tokens": 6, "total_tokens": 6},
            }
        ),
    )
    result = sdk(gateway, gateway.create_key()).embeddings.create(
        model="openai/text-embedding-3-small", input=["a", "b"]
    )
    # the SDK asked for base64 (its default): float32 on the wire, as OpenAI does
    assert [d.embedding for d in result.data] == [pytest.approx([0.0, 0.2]), pytest.approx([0.1, 0.2])]
    assert result.usage.prompt_tokens == 6


def test_models_only_lists_what_the_key_may_use(gateway: GatewayThread) -> None:
    scoped = sdk(gateway, gateway.create_key(models=["deepseek/*"]))
    ids = [m.id for m in scoped.models.list()]
    assert ids
    assert all(i.startswith("deepseek/") for i in ids)
    everything = [m.id for m in sdk(gateway, gateway.create_key()).models.list()]
    assert any(i.startswith("openai/") for i in everything)
    assert scoped.models.retrieve("deepseek/deepseek-chat").id == "deepseek/deepseek-chat"
    with pytest.raises(openai.NotFoundError):
        scoped.models.retrieve("openai/gpt-5.4-mini")


def test_openai_error_format_and_statuses(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError) as error:
        sdk(gateway, "mb-000000000000-nope").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert error.value.status_code == 401
    key = gateway.create_key(models=["deepseek/*"])
    client = sdk(gateway, key)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="openai/gpt-5.4-mini", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="deepseek/deepseek-chta", messages=[{"role": "user", "content": "x"}]
        )
    assert "did you mean" in str(missing.value)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "x"}])
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    # a Retry-After longer than the gateway waits for itself (client.max_retry_after) goes back to the caller
    upstream.fail(
        429, retry_after=700, body={"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
    )
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "700"
    upstream.fail(503, times=3)
    with pytest.raises(openai.APIStatusError) as overloaded:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 503
    upstream.fail(401, body={"error": {"message": "upstream key rejected"}})
    with pytest.raises(openai.APIStatusError) as upstream_auth:  # the gateway's own credentials: a 502
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert upstream_auth.value.status_code == 502


def test_httpx_raw_protocol(gateway: GatewayThread) -> None:
    key = gateway.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=headers,
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-modelbus-request-id"].startswith("mb-")
    assert "policy=direct" in response.headers["x-modelbus-route"]
    assert float(response.headers["x-modelbus-cost-usd"]) > 0
    body = response.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert "provider" not in body
    bad_json = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, content=b"{nope")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["message"] == "the request body is not valid JSON"
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers=headers,
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert r.headers["content-type"].startswith("text/event-stream")


def test_health_and_metrics(gateway: GatewayThread) -> None:
    assert httpx.get(gateway.url + "/health/live").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/health/ready").json()["status"] == "ready"
    sdk(gateway, gateway.create_key(team="t")).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    metrics = httpx.get(gateway.url + "/metrics").text
    assert (
        'modelbus_requests_total{endpoint="chat",model="deepseek/deepseek-chat",provider="deepseek",status="ok"}'
        in metrics
    )
    assert "modelbus_request_latency_seconds_bucket" in metrics
    assert (
        'modelbus_tokens_total{kind="prompt",model="deepseek/deepseek-chat",provider="deepseek"} 10.0'
        in metrics
    )
    assert 'modelbus_cost_usd_total{model="deepseek/deepseek-chat",provider="deepseek",team="t"}' in metrics


def test_dropped_params_are_reported(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    key = gateway.create_key()
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "deepseek/deepseek-reasoner",
            "temperature": 0.3,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 200, response.text
    assert "temperature" in response.headers["x-modelbus-dropped-params"]
    assert "temperature" not in upstream.requests[-1].json


def test_request_size_limit_and_no_per_request_upstream(gateway: GatewayThread) -> None:
    key = gateway.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    big = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=headers,
        json={"model": MODEL, "messages": [{"role": "user", "content": "x" * 5_000_000}]},
    )
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "request_too_large"
    ssrf = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=headers,
        json={
            "model": MODEL,
            "api_base": "http://169.254.169.254/",
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert ssrf.status_code == 400
    assert "configured on the gateway" in ssrf.json()["error"]["message"]
    in_url = httpx.get(gateway.url + f"/v1/models?api_key={key}")
    assert in_url.status_code == 401  # keys are only read from the Authorization header


def test_a_modelbus_client_through_the_gateway_sees_the_billed_cost(gateway: GatewayThread) -> None:
    from modelbus.connection import Connection

    connection = Connection(
        model="deepseek/deepseek-chat", base_url=gateway.url + "/v1", api_key=gateway.create_key()
    )
    response = connection.client.chat(connection.target(), "hi")
    assert response.text == "Hello from the upstream."
    assert str(response.cost) == "0.0000028000"  # what the gateway billed, from x-modelbus-cost-usd
    connection.close()
