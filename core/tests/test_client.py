"""The sync and async clients against a real local server: retries, timeouts, failures, cancellation."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from acme_provider import plugin as acme_plugin

from modelbus import AsyncClient, Client
from modelbus.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    MissingCredentialsError,
    OverloadedError,
    RateLimitError,
    RequestTimeoutError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from modelbus.testing import FakeUpstream, ResponseSpec, SSEItem

from .conftest import KEY


def make(upstream: FakeUpstream, **kw: object) -> Client:
    kw.setdefault("max_retries", 0)
    return Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={"client": {"backoff_base": 0.01}},
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
        **kw,  # type: ignore[arg-type]
    )


def test_plain_call_has_usage_cost_and_route(client: Client, upstream: FakeUpstream) -> None:
    response = client.chat(
        "acme/acme-chat", [{"role": "user", "content": "hi"}], temperature=0, metadata={"x": "y"}
    )
    assert response.text == "Hello from acme."
    assert response.usage is not None
    assert response.usage.total_tokens == 15
    assert str(response.cost) == "0.000075"
    assert response.cost_breakdown is not None
    assert response.cost_breakdown.price_source == "https://platform.openai.com/docs/pricing"
    assert response.route is not None
    assert response.route.resolved == "acme/acme-chat"
    assert [a.outcome for a in response.route.attempts] == ["ok"]
    sent = upstream.requests[-1].json
    assert sent["model"] == "acme-chat"
    assert "metadata" not in sent


def test_stream_yields_chunks_then_one_usage_chunk(client: Client) -> None:
    with client.chat("acme/acme-chat", "hi", stream=True) as stream:
        chunks = list(stream)
    assert "".join(c.text for c in chunks) == "Hello from acme."
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []
    assert chunks[-1].cost is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert stream.response is not None
    assert stream.response.text == "Hello from acme."
    assert stream.cost == chunks[-1].cost


def test_stream_matches_non_stream_response(client: Client) -> None:
    plain = client.chat("acme/acme-chat", "hi")
    streamed = client.chat("acme/acme-chat", "hi", stream=True).until_done()
    assert streamed.choices[0].message == plain.choices[0].message
    assert streamed.choices[0].finish_reason == plain.choices[0].finish_reason
    assert streamed.usage == plain.usage
    assert streamed.cost == plain.cost


async def test_async_twin(aclient: AsyncClient) -> None:
    response = await aclient.chat("acme/acme-chat", "hi")
    assert response.text == "Hello from acme."
    stream = await aclient.chat("acme/acme-chat", "hi", stream=True)
    texts = [chunk.text async for chunk in stream]
    assert "".join(texts) == "Hello from acme."
    assert stream.usage is not None


async def test_async_concurrency(aclient: AsyncClient) -> None:
    results = await asyncio.gather(*(aclient.chat("acme/acme-chat", f"hi {n}") for n in range(64)))
    assert {r.text for r in results} == {"Hello from acme."}


def test_embeddings(upstream: FakeUpstream, client: Client) -> None:
    upstream.add(
        "POST",
        "/embeddings",
        ResponseSpec(
            json={
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]},
                    {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, 0.0]},
                ],
                "model": "acme-embed",
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        ),
    )
    result = client.embed("acme/acme-embed", ["a", "b"])
    assert result.vectors == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert str(result.cost) == "8E-8"
    with pytest.raises(UnsupportedFeatureError, match="not an embedding model"):
        client.embed("acme/acme-chat", "a")
    with pytest.raises(UnsupportedFeatureError, match="embedding model"):
        client.chat("acme/acme-embed", "a")


def test_retries_honour_retry_after_then_succeed(upstream: FakeUpstream) -> None:
    upstream.fail(429, retry_after=0.2, times=1)
    upstream.fail(503, times=1)
    start = time.monotonic()
    response = make(upstream, max_retries=3).chat("acme/acme-chat", "hi")
    assert time.monotonic() - start >= 0.2
    assert [a.error_type for a in response.route.attempts] == ["RateLimitError", "OverloadedError", None]  # type: ignore[union-attr]


def test_retries_give_up_with_the_last_typed_error(upstream: FakeUpstream) -> None:
    upstream.fail(503, times=5)
    with pytest.raises(OverloadedError):
        make(upstream, max_retries=2).chat("acme/acme-chat", "hi")
    assert len(upstream.requests) == 3


def test_retry_after_longer_than_the_cap_is_not_waited(upstream: FakeUpstream) -> None:
    upstream.fail(429, retry_after=3600, times=1)
    start = time.monotonic()
    with pytest.raises(RateLimitError) as error:
        make(upstream, max_retries=3).chat("acme/acme-chat", "hi")
    assert time.monotonic() - start < 2
    assert error.value.retry_after == 3600


def test_non_retryable_errors_are_not_retried(upstream: FakeUpstream) -> None:
    upstream.fail(400, body={"error": {"message": "bad thing", "code": "invalid_value"}}, times=3)
    with pytest.raises(BadRequestError, match="bad thing"):
        make(upstream, max_retries=3).chat("acme/acme-chat", "hi")
    assert len(upstream.requests) == 1


def test_total_timeout_and_read_timeout(upstream: FakeUpstream) -> None:
    upstream.hang(3)
    start = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        make(upstream).chat("acme/acme-chat", "hi", timeout=0.5)
    assert time.monotonic() - start < 2


async def test_async_timeout(upstream: FakeUpstream) -> None:
    upstream.hang(3)
    client = AsyncClient(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )
    with pytest.raises(RequestTimeoutError):
        await client.chat("acme/acme-chat", "hi", timeout=0.5)
    await client.aclose()


def test_connection_refused_is_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": f"http://127.0.0.1:{port}"}},
    )
    with pytest.raises(APIConnectionError, match="could not connect"):
        client.chat("acme/acme-chat", "hi")


def test_non_json_and_truncated_bodies(upstream: FakeUpstream, client: Client) -> None:
    upstream.malformed()
    with pytest.raises(MalformedResponseError, match="not JSON"):
        client.chat("acme/acme-chat", "hi")
    upstream.truncate()
    with pytest.raises(MalformedResponseError):
        client.chat("acme/acme-chat", "hi")


def test_stream_without_done_and_mid_stream_disconnect(upstream: FakeUpstream, client: Client) -> None:
    upstream.truncate()
    with pytest.raises(StreamInterruptedError, match="end-of-stream"):
        client.chat("acme/acme-chat", "hi", stream=True).until_done()
    upstream.disconnect(after_events=3)
    stream = client.chat("acme/acme-chat", "hi", stream=True)
    with pytest.raises(APIConnectionError):
        list(stream)
    assert stream.response is not None  # what arrived before the cut is kept
    assert stream.response.text.startswith("Hello")


def test_a_stream_fails_over_or_retries_only_before_its_first_token(upstream: FakeUpstream) -> None:
    client = make(upstream, max_retries=2)
    upstream.disconnect(after_events=1)  # cut after the role-only chunk: no token reached the caller yet
    assert client.chat("acme/acme-chat", "hi", stream=True).until_done().text == "Hello from acme."
    upstream.disconnect(after_events=3)  # cut after tokens: the stream ends with the error
    with pytest.raises(APIConnectionError):
        client.chat("acme/acme-chat", "hi", stream=True).until_done()


def test_stream_error_event_mid_stream_is_typed(upstream: FakeUpstream, client: Client) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(data={"id": "x", "choices": [{"index": 0, "delta": {"content": "par"}}]}),
                SSEItem(
                    data={
                        "error": {
                            "message": "The server is overloaded",
                            "type": "server_error",
                            "code": "overloaded",
                        }
                    }
                ),
            ]
        ),
        stream=True,
    )
    with pytest.raises(OverloadedError, match="overloaded"):
        client.chat("acme/acme-chat", "hi", stream=True).until_done()


def test_closing_a_stream_closes_the_upstream_connection(upstream: FakeUpstream, client: Client) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            event_delay=0.05,
            sse=[
                SSEItem(data={"id": "x", "choices": [{"index": 0, "delta": {"content": f"tok{n} "}}]})
                for n in range(100)
            ]
            + [SSEItem(data="[DONE]")],
        ),
        stream=True,
    )
    stream = client.chat("acme/acme-chat", "hi", stream=True)
    next(stream)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 3
    while upstream.client_disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.client_disconnects == 1


async def test_cancelling_an_async_stream_closes_upstream(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            event_delay=0.05,
            sse=[
                SSEItem(data={"id": "x", "choices": [{"index": 0, "delta": {"content": f"tok{n} "}}]})
                for n in range(100)
            ]
            + [SSEItem(data="[DONE]")],
        ),
        stream=True,
    )
    client = AsyncClient(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )

    async def consume() -> None:
        async with await client.chat("acme/acme-chat", "hi", stream=True) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(60):
        if upstream.client_disconnects:
            break
        await asyncio.sleep(0.05)
    assert upstream.client_disconnects == 1
    await client.aclose()


def test_capabilities_are_checked_before_anything_is_sent(upstream: FakeUpstream, client: Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(UnsupportedFeatureError, match="does not support tools"):
        client.chat("acme/acme-mini", "hi", tools=[tool])
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    with pytest.raises(UnsupportedFeatureError, match="image inputs"):
        client.chat("acme/acme-mini", image)
    with pytest.raises(UnsupportedFeatureError, match="json_schema"):
        client.chat(
            "acme/acme-mini",
            "hi",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        )
    with pytest.raises(BadRequestError, match="exceeds"):
        client.chat("acme/acme-mini", "hi", max_tokens=5000)
    assert not upstream.requests


def test_compat_drop_mode_drops_and_clamps(upstream: FakeUpstream) -> None:
    client = make(upstream, compat="drop")
    client.chat("acme/acme-mini", "hi", seed=3, max_tokens=5000, reasoning_effort="high")
    sent = upstream.requests[-1].json
    assert "seed" not in sent
    assert "reasoning_effort" not in sent
    assert sent["max_tokens"] == 1024


def test_missing_key_and_secrets_stay_out_of_errors_and_logs(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    no_key = Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"base_url": upstream.url}},
    )
    with pytest.raises(MissingCredentialsError, match="ACME_API_KEY"):
        no_key.chat("acme/acme-chat", "hi")
    upstream.fail(
        401, body={"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}}
    )
    with pytest.raises(AuthenticationError) as error:
        make(upstream).chat("acme/acme-chat", "my secret prompt")
    assert KEY not in str(error.value)
    assert KEY not in caplog.text
    assert "my secret prompt" not in caplog.text


def test_health(upstream: FakeUpstream, client: Client) -> None:
    upstream.add("GET", "/models", ResponseSpec(json={"object": "list", "data": []}))
    assert client.health("acme").ok
    upstream.fail(401, body={"error": {"message": "bad key"}})
    status = client.health("acme")
    assert not status.ok
    assert "bad key" in status.detail
    with pytest.raises(BadRequestError, match="not installed"):
        client.health("nope")


def test_messages_are_required_and_validated(client: Client) -> None:
    with pytest.raises(BadRequestError, match="messages is required"):
        client.chat("acme/acme-chat")
    with pytest.raises(BadRequestError, match=r"messages\.0"):
        client.chat("acme/acme-chat", [{"role": "user"}])
    with pytest.raises(BadRequestError, match="temperature"):
        client.chat("acme/acme-chat", "hi", temperature=9)
    with pytest.raises(BadRequestError, match="bogus"):
        client.chat("acme/acme-chat", "hi", bogus=1)


def test_retry_hint_from_the_message_when_no_header(upstream: FakeUpstream, client: Client) -> None:
    upstream.fail(
        429, body={"error": {"message": "Rate limit reached. Please try again in 1.5s.", "code": "x"}}
    )
    with pytest.raises(RateLimitError) as error:
        client.chat("acme/acme-chat", "hi")
    assert error.value.retry_after == 1.5


def test_extra_params_the_model_rejects(upstream: FakeUpstream) -> None:
    strict = make(upstream)
    with pytest.raises(UnsupportedFeatureError, match="'logprobs'"):
        strict.chat("acme/acme-mini", "hi", extra={"logprobs": True, "top_k": 3})
    make(upstream, compat="drop").chat("acme/acme-mini", "hi", extra={"logprobs": True, "top_k": 3})
    assert upstream.requests[-1].json["top_k"] == 3
    assert "logprobs" not in upstream.requests[-1].json


def test_regional_prices_replace_the_base_price(upstream: FakeUpstream) -> None:
    client = Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={
            "models": {
                "acme/acme-chat": {
                    "regional_prices": {
                        "eu": {
                            "currency": "EUR",
                            "input": "3",
                            "output": "12",
                            "as_of": "2026-11-01",
                            "source": "https://example.eu/pricing",
                        }
                    }
                }
            }
        },
        providers={"acme": {"api_key": KEY, "base_url": upstream.url, "region": "eu"}},
    )
    response = client.chat("acme/acme-chat", "hi")
    assert response.cost_breakdown is not None
    assert response.cost_breakdown.price_currency == "EUR"
    assert response.cost_breakdown.price_source == "https://example.eu/pricing"


def test_live_model_listing_merges_into_the_registry(upstream: FakeUpstream) -> None:
    from typing import Any

    from modelbus import hookimpl
    from modelbus.http import HttpRequest, join_url
    from modelbus.types import ModelInfo

    class Lister:
        @hookimpl
        def modelbus_list_models_request(self, provider: str, settings: Any, base_url: str) -> Any:
            return HttpRequest("GET", join_url(base_url, "/models")) if provider == "acme" else None

        @hookimpl
        def modelbus_parse_model_list(self, provider: str, response: Any) -> Any:
            if provider != "acme":
                return None
            return [
                ModelInfo(provider="acme", id=row["id"], context_window=4096, capabilities={"streaming"})
                for row in response.json()["data"]
            ]

    upstream.add("GET", "/models", ResponseSpec(json={"data": [{"id": "acme-chat"}, {"id": "acme-live-1"}]}))
    client = make(upstream)
    client.register_plugin(Lister())
    listed = client.list_models("acme")
    assert [m.id for m in listed] == ["acme-chat", "acme-live-1"]
    assert client.resolve("acme/acme-live-1").context_window == 4096
    assert client.resolve("acme/acme-chat").price is not None  # the table row wins over the live row


def test_a_json_answer_to_a_stream_request_becomes_a_stream(upstream: FakeUpstream, client: Client) -> None:
    """Servers that ignore stream=True (or answer with an error envelope) still give a proper stream."""
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            json={
                "id": "x",
                "model": "acme-chat",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "whole"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        ),
        stream=True,
    )
    with client.chat("acme/acme-chat", "hi", stream=True) as stream:
        chunks = list(stream)
    assert "".join(c.text for c in chunks) == "whole"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 4
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(json={"error": {"message": "quota gone", "code": "insufficient_quota"}}),
        stream=True,
    )
    from modelbus.errors import QuotaExceededError

    with pytest.raises(QuotaExceededError):
        client.chat("acme/acme-chat", "hi", stream=True).until_done()


def test_a_stream_without_finish_reason_gets_one_inferred(upstream: FakeUpstream, client: Client) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(data={"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]}),
                SSEItem(data="[DONE]"),
            ]
        ),
        stream=True,
    )
    response = client.chat("acme/acme-chat", "hi", stream=True).until_done()
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.estimated  # the server sent no usage: counted locally, and said so


def test_configured_fallbacks_fail_over_on_retryable_errors(upstream: FakeUpstream) -> None:
    client = Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        max_retries=0,
        config={"fallbacks": {"acme/acme-chat": ["acme/acme-mini"]}},
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )
    upstream.fail(503)
    response = client.chat("acme/acme-chat", "hi")
    assert response.route is not None
    assert response.route.policy == "fallback"
    assert [(a.deployment, a.outcome) for a in response.route.attempts] == [
        ("acme/acme-chat", "error"),
        ("acme/acme-mini", "ok"),
    ]
    assert upstream.requests[-1].json["model"] == "acme-mini"
    upstream.fail(400, body={"error": {"message": "bad"}})
    with pytest.raises(BadRequestError):  # not retryable: no failover
        client.chat("acme/acme-chat", "hi")


def test_n_equal_one_is_the_default_and_error_params_are_kept(upstream: FakeUpstream, client: Client) -> None:
    client.chat("acme/acme-mini", "hi", n=1)  # acme-mini supports no n, but n=1 asks for nothing
    assert "n" not in upstream.requests[-1].json
    upstream.fail(
        400, body={"error": {"message": "bad value", "param": "temperature", "code": "invalid_value"}}
    )
    with pytest.raises(BadRequestError) as error:
        client.chat("acme/acme-chat", "hi")
    assert error.value.param == "temperature"
    assert error.value.to_openai_error()["error"]["param"] == "temperature"


def test_connection_request_fields_are_chat_request_fields() -> None:
    from modelbus.connection import REQUEST_FIELDS
    from modelbus.types import ChatRequest

    settable = set(ChatRequest.model_fields) - {"model", "messages", "stream", "extra"}
    assert settable | {"max_completion_tokens"} == REQUEST_FIELDS


def test_connection_chat_params_split_fields_from_provider_extras() -> None:
    from modelbus.connection import Connection

    connection = Connection(model="acme/m1")
    target, params = connection.chat_params(
        {"temperature": 0.2, "max_tokens": None},
        {"max_completion_tokens": 5, "top_k": 3, "extra": {"a": 1}, "timeout": 9, "seed": None},
        extra={"b": 2},
    )
    assert target == "acme/m1"
    assert params == {
        "temperature": 0.2,
        "max_tokens": 5,
        "extra": {"b": 2, "a": 1, "top_k": 3},
        "timeout": 9,
    }
    gateway = Connection(model="acme/m1", base_url="http://127.0.0.1:1/v1")
    assert gateway.chat_params({}, {"model": "other/m2"})[0] == "gateway/other/m2"
