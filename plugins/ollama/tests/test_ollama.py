"""modelbus-ollama: the conformance kit plus Ollama's own behaviour, against a real FakeUpstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from modelbus_ollama import plugin, server_root

from modelbus import AsyncClient, Client
from modelbus.errors import APIConnectionError, UnsupportedFeatureError, UpstreamServerError
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec

SAMPLES = Path(__file__).parent / "samples"


def api_tags() -> dict[str, Any]:
    """The documented GET /api/tags answer (the body of the models sample)."""
    sample = json.loads((SAMPLES / "models_api_tags.json").read_text())
    return dict(sample["upstream"]["response"]["json"])


class TestOllamaConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = SAMPLES


# ---------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_ollama_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("OLLAMA_BASE_URL", raising=False)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(
    upstream: FakeUpstream | None = None, *, settings: dict[str, Any] | None = None, **kw: Any
) -> Client:
    providers = {"ollama": {**({"base_url": upstream.url} if upstream else {}), **(settings or {})}}
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config=kw.pop("config", {}),
        max_retries=0,
        providers=providers,
        **kw,
    )


def completion(content: str = "ok", model: str = "qwen3:8b") -> ResponseSpec:
    return ResponseSpec(
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )


# ---------------------------------------------------------------------------------------- keys and URLs


def test_no_key_needed_and_none_sent(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v1/chat/completions", completion())
    with make_client(upstream) as client:
        response = client.chat("ollama/qwen3:8b", "hi")
    assert response.text == "ok"
    assert response.cost == 0
    assert "authorization" not in upstream.requests[-1].headers
    assert plugin.provider_info.requires_api_key is False


def test_configured_key_is_sent_as_bearer(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key")
    upstream.add("POST", "/v1/chat/completions", completion())
    with make_client(upstream) as client:
        client.chat("ollama/qwen3:8b", "hi")
    assert upstream.requests[-1].headers["authorization"] == "Bearer ollama-cloud-key"


def test_default_base_url_is_local_server() -> None:
    region = plugin.provider_info.regions[plugin.provider_info.default_region]
    assert region.base_url == "http://localhost:11434"
    assert region.jurisdiction == "LOCAL"


def test_base_url_from_environment(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_BASE_URL (the core's <NAME>_BASE_URL convention) points the client at another server."""
    monkeypatch.setenv("OLLAMA_BASE_URL", upstream.url)
    upstream.add("POST", "/v1/chat/completions", completion("from env"))
    upstream.add("GET", "/api/version", ResponseSpec(json={"version": "0.13.3"}))
    with make_client() as client:
        assert client.chat("ollama/llama3.2", "hi").text == "from env"
        assert client.health("ollama").ok
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/api/version"]


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(upstream: FakeUpstream, suffix: str) -> None:
    upstream.add("POST", "/v1/chat/completions", completion())
    upstream.add("POST", "/v1/embeddings", ResponseSpec(json={"data": [{"index": 0, "embedding": [0.5]}]}))
    with make_client(settings={"base_url": upstream.url + suffix}) as client:
        client.chat("ollama/qwen3:8b", "hi")
        client.embed("ollama/all-minilm", "hi")
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/v1/embeddings"]


def test_server_root() -> None:
    assert server_root("http://gpu-box:11434/v1/") == "http://gpu-box:11434"
    assert server_root("https://proxy.example/ollama") == "https://proxy.example/ollama"


# ------------------------------------------------------------------------------- health and live models


def test_health_when_server_is_down() -> None:
    with FakeUpstream() as server:
        url = server.url
    with make_client(settings={"base_url": url}) as client:
        status = client.health("ollama")
    assert not status.ok
    assert isinstance(status.error, APIConnectionError)


def test_health_reports_server_errors(upstream: FakeUpstream) -> None:
    upstream.fail(500, body={"error": "something went wrong"})
    with make_client(upstream) as client:
        status = client.health("ollama")
    assert not status.ok
    assert status.error is not None
    assert status.error.status_code == 500


def test_live_model_list_from_api_tags(upstream: FakeUpstream) -> None:
    tags = api_tags()
    tags["models"].append(
        {
            "name": "nomic-embed-text:latest",
            "model": "nomic-embed-text:latest",
            "details": {"family": "nomic-bert", "families": ["nomic-bert"], "parameter_size": "137M"},
        }
    )
    upstream.add("GET", "/api/tags", ResponseSpec(json=tags))
    with make_client(upstream) as client:
        rows = {row.id: row for row in client.list_models("ollama")}
        # merged into the registry: listed models resolve with their live row
        assert client.resolve("ollama/nomic-embed-text:latest").kind == "embedding"
        assert "ollama/deepseek-r1:latest" in [m.full_id for m in client.models("ollama/*")]
    assert list(rows) == ["deepseek-r1:latest", "llama3.2:latest", "nomic-embed-text:latest"]
    assert upstream.requests[-1].path == "/api/tags"
    deepseek = rows["deepseek-r1:latest"]
    assert deepseek.provider == "ollama"
    assert deepseek.kind == "chat"
    assert deepseek.description == "qwen2 7.6B Q4_K_M"
    assert deepseek.price is not None
    assert deepseek.price.is_free
    llama = rows["llama3.2:latest"]  # known to the static table: its row, under the server's name
    assert llama.context_window == 131072
    assert "reasoning" not in llama.capabilities
    assert rows["nomic-embed-text:latest"].kind == "embedding"


def test_live_model_list_empty_server(upstream: FakeUpstream) -> None:
    upstream.add("GET", "/api/tags", ResponseSpec(json={"models": []}))
    with make_client(upstream) as client:
        assert client.list_models("ollama") == []


async def test_live_model_list_async(upstream: FakeUpstream) -> None:
    tags = api_tags()
    upstream.add("GET", "/api/tags", ResponseSpec(json=tags))
    async with AsyncClient(
        plugins=[plugin], load_entrypoints=False, config={}, providers={"ollama": {"base_url": upstream.url}}
    ) as client:
        rows = await client.list_models("ollama")
    assert [row.id for row in rows] == ["deepseek-r1:latest", "llama3.2:latest"]


def test_live_model_list_server_error(upstream: FakeUpstream) -> None:
    upstream.fail(500, body={"error": "something went wrong"})
    with make_client(upstream) as client, pytest.raises(UpstreamServerError):
        client.list_models("ollama")


# ---------------------------------------------------------------------------------------- request shape


def test_any_model_id_is_accepted() -> None:
    with make_client() as client:
        model = client.resolve("ollama/mistral-nemo:12b-instruct-2407-q4_K_M")
    assert model.id == "mistral-nemo:12b-instruct-2407-q4_K_M"
    assert model.supports("tools")
    assert model.price is not None
    assert model.price.is_free


def test_http_image_urls_are_refused_locally(upstream: FakeUpstream) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError) as info:
        client.chat("ollama/qwen3-vl:8b", messages)
    assert "data:" in str(info.value)
    assert not upstream.requests


def test_data_url_images_are_sent(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v1/chat/completions", completion("a cat"))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]
    with make_client(upstream) as client:
        assert client.chat("ollama/qwen3-vl:8b", messages).text == "a cat"
    assert upstream.requests[-1].json["messages"][0]["content"][1] == image


def test_reasoning_goes_back_as_reasoning(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v1/chat/completions", completion())
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "thought"},
        {"role": "user", "content": "q2"},
    ]
    with make_client(upstream) as client:
        client.chat("ollama/gpt-oss:20b", messages)
    sent = upstream.requests[-1].json["messages"][1]
    assert sent == {"role": "assistant", "content": "a", "reasoning": "thought"}


def test_n_is_not_supported(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("ollama/some-model", "hi", n=2)
    assert not upstream.requests


def test_unlisted_embedding_model_via_config(upstream: FakeUpstream) -> None:
    """Embedding models missing from the table work by id (embedding template) or by a config row."""
    upstream.add(
        "POST",
        "/v1/embeddings",
        ResponseSpec(json={"data": [{"index": 0, "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 2}}),
    )
    config = {
        "models": {
            "ollama/nomic-embed-text": {
                "kind": "embedding",
                "context_window": 8192,
                "embedding_dimensions": 768,
            }
        }
    }
    with make_client(upstream, config=config) as client:
        assert client.embed("ollama/nomic-embed-text", "hi").vectors == [[0.1, 0.2]]
        assert client.embed("ollama/mxbai-embed-large", "hi").vectors == [
            [0.1, 0.2]
        ]  # the embedding template
        with pytest.raises(UnsupportedFeatureError):
            client.chat("ollama/nomic-embed-text", "hi")  # a declared embedding model cannot chat


async def test_async_client(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v1/chat/completions", completion("async ok"))
    client = AsyncClient(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"ollama": {"base_url": upstream.url}},
    )
    try:
        response = await client.chat("ollama/qwen3:8b", "hi")
        status = await client.health("ollama")
    finally:
        await client.aclose()
    assert response.text == "async ok"
    assert status.ok is False  # no /api/version route on this upstream: 404


# ---------------------------------------------------------------------------------------- packaging


def test_prices_are_zero_with_a_source() -> None:
    for model in plugin.provider_info.models:
        assert model.price is not None
        assert model.price.is_free
        assert model.price.source.startswith("https://")


def test_entry_point_when_installed() -> None:
    try:
        dist = metadata.distribution("modelbus-ollama")
    except metadata.PackageNotFoundError:
        pytest.skip("modelbus-ollama is not installed")
    points = [ep for ep in dist.entry_points if ep.group == "modelbus"]
    assert [(ep.name, ep.value) for ep in points] == [("ollama", "modelbus_ollama:plugin")]
    assert dist.metadata.get_all("Requires-Dist") == ["modelbus>=0.1"]
