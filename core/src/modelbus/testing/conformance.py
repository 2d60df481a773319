"""The conformance suite every provider plugin runs against itself.

    from modelbus.testing import ProviderConformanceTests
    import modelbus_deepseek

    class TestDeepSeek(ProviderConformanceTests):
        plugin = modelbus_deepseek.plugin
        samples_dir = Path(__file__).parent / "samples"

Each wire sample becomes one test (``test_sample[<name>]``) that replays it on a :class:`FakeUpstream`,
calls the real :class:`~modelbus.Client` and checks the translated request and the normalized result.
The other tests check registration, the model table, required sample coverage, error mapping for
every status class, malformed and truncated bodies, mid-stream disconnects and secret hygiene.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelbus.client import Client
from modelbus.errors import (
    APIConnectionError,
    MalformedResponseError,
    MissingCredentialsError,
    ModelbusError,
    error_class_by_name,
)
from modelbus.plugins import PluginHost
from modelbus.testing.fake_upstream import FakeUpstream
from modelbus.testing.samples import WireSample, load_samples
from modelbus.types.chat import ChatResponse

TEST_KEY = "sk-test-conformance-0123456789"
REQUIRED_TAGS = {
    "chat": "a plain chat",
    "chat_stream": "a streamed chat with usage",
    "tools": "a tool call",
    "tools_stream": "a streamed tool call",
    "error": "an error",
}


def _subset(expected: Any, actual: Any, where: str = "body") -> None:
    """Assert that ``expected`` is contained in ``actual`` (dicts recursively, lists element-wise)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: missing key {key!r} (have {sorted(actual)})"
            _subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: expected {len(expected)} items, got {actual!r}"
        for position, (exp, act) in enumerate(zip(expected, actual, strict=True)):
            _subset(exp, act, f"{where}[{position}]")
    else:
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


class ProviderConformanceTests:
    """Subclass in a plugin's tests; set ``plugin`` and ``samples_dir``."""

    plugin: ClassVar[object]
    samples_dir: ClassVar[Path]
    settings: ClassVar[dict[str, Any]] = {}
    required_tags: ClassVar[dict[str, str]] = REQUIRED_TAGS

    # -- parametrization ---------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sample" in metafunc.fixturenames:
            samples = load_samples(self.samples_dir)
            metafunc.parametrize("sample", samples, ids=[s.name for s in samples])

    # -- fixtures ----------------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self.plugin.provider_info.name  # type: ignore[attr-defined]

    @pytest.fixture
    def upstream(self) -> Iterator[FakeUpstream]:
        with FakeUpstream() as upstream:
            yield upstream

    def make_client(self, upstream: FakeUpstream, **settings: Any) -> Client:
        merged = {"api_key": TEST_KEY, **self.settings, **settings, "base_url": upstream.url}
        return Client(
            plugins=[self.plugin],
            load_entrypoints=False,
            providers={self.provider: merged},
            max_retries=0,
            timeout=20,
            config={},
        )

    def any_chat_model(self) -> str:
        info = self.plugin.provider_info  # type: ignore[attr-defined]
        model = next((m for m in info.models if m.kind == "chat"), None)
        assert model is not None, "the model table has no chat model"
        return model.full_id

    # -- registration and tables -------------------------------------------------------------

    def test_registers_cleanly(self) -> None:
        host = PluginHost(load_entrypoints=False, plugins=[self.plugin])
        host.load()
        assert not host.errors(), [r.error for r in host.errors()]
        assert self.provider in host.providers
        host.pm.check_pending()

    def test_model_table(self) -> None:
        info = self.plugin.provider_info  # type: ignore[attr-defined]
        assert info.models, "a provider plugin ships a model table"
        ids = [m.id for m in info.models]
        assert len(ids) == len(set(ids)), "model ids repeat"
        for model in info.models:
            assert model.price is not None, f"{model.id} has no price (use 0 with a source for free models)"
            assert model.price.source.startswith("http"), f"{model.id}: price needs a source URL"
            assert model.price.as_of.year >= 2024, f"{model.id}: price as_of {model.price.as_of} is stale"
            if model.kind == "chat":
                assert "streaming" in model.capabilities, f"{model.id}: chat models stream"

    def test_required_samples_present(self) -> None:
        samples = load_samples(self.samples_dir)
        have = {sample.kind for sample in samples} | {tag for sample in samples for tag in sample.tags}
        missing = {tag: what for tag, what in self.required_tags.items() if tag not in have}
        assert not missing, f"wire samples missing: {', '.join(missing.values())}"
        for sample in samples:
            assert sample.source.startswith("http"), f"{sample.name}: cite the doc page in 'source'"

    # -- each wire sample --------------------------------------------------------------------

    def test_sample(self, sample: WireSample, upstream: FakeUpstream) -> None:
        upstream.replay(sample)
        client = self.make_client(upstream, **sample.settings)
        try:
            if sample.kind == "health":
                status = client.health(self.provider)
                assert status.ok is (sample.expect.healthy if sample.expect.healthy is not None else True), (
                    status
                )
            elif sample.kind == "models":
                listed = client.list_models(self.provider)
                if sample.expect.model_ids is not None:
                    assert [m.id for m in listed] == sample.expect.model_ids
                assert all(m.provider == self.provider for m in listed)
                assert {m.full_id for m in listed} <= {m.full_id for m in client.models()}
            elif sample.expect.error is not None:
                self._check_error(client, sample)
            elif sample.kind == "embedding":
                result = client.embed(**sample.request)
                if sample.expect.embeddings is not None:
                    assert len(result.data) == sample.expect.embeddings
                if sample.expect.dimensions is not None:
                    assert all(len(v) == sample.expect.dimensions for v in result.vectors)
                self._check_cost(sample, result.cost)
            else:
                response = self._chat(client, sample)
                self._check_response(sample, response)
        finally:
            client.close()
        if sample.kind not in ("health", "models"):
            self._check_request(sample, upstream)

    def _chat(self, client: Client, sample: WireSample) -> ChatResponse:
        if sample.kind == "chat_stream":
            with client.chat(**{**sample.request, "stream": True}) as stream:
                chunks = list(stream)
            usage_chunks = [c for c in chunks if c.usage is not None]
            assert len(usage_chunks) == 1, "exactly one chunk carries usage"
            assert chunks[-1] is usage_chunks[0], "the usage chunk comes last"
            assert chunks[-1].choices == [], "the usage chunk carries no choices"
            response = stream.response
            assert response is not None
            return response
        return client.chat(**sample.request)

    def _check_request(self, sample: WireSample, upstream: FakeUpstream) -> None:
        expected = sample.upstream.request
        assert upstream.requests, "nothing reached the upstream"
        sent = upstream.requests[-1]
        assert sent.method == expected.method
        assert sent.path == expected.path, f"sent to {sent.path}, expected {expected.path}"
        for key, value in expected.query.items():
            assert sent.query.get(key) == value, f"query {key}: {sent.query.get(key)!r} != {value!r}"
        for key, value in expected.headers.items():
            actual = sent.headers.get(key.lower())
            assert actual == value.replace("{api_key}", TEST_KEY), f"header {key}: {actual!r}"
        if expected.json_body is not None:
            _subset(expected.json_body, sent.json)
        for key in expected.absent:
            assert key not in (sent.json or {}), f"{key!r} must not be sent upstream"

    def _check_response(self, sample: WireSample, response: ChatResponse) -> None:
        expect = sample.expect
        message = response.choices[0].message
        if expect.content is not None:
            assert message.content == expect.content
        if expect.content_contains is not None:
            assert expect.content_contains in (message.content or "")
        if expect.reasoning_content is not None:
            assert message.reasoning_content == expect.reasoning_content
        if expect.reasoning_signature is not None:
            assert message.reasoning_signature == expect.reasoning_signature
        if expect.finish_reason is not None:
            assert response.choices[0].finish_reason == expect.finish_reason
        if expect.tool_calls is not None:
            calls = message.tool_calls or []
            assert [c.function.name for c in calls] == [c.name for c in expect.tool_calls]
            for call, wanted in zip(calls, expect.tool_calls, strict=True):
                assert json.loads(call.function.arguments) == wanted.arguments
                assert call.id, "tool calls carry an id"
        if expect.usage is not None:
            usage = response.usage
            assert usage is not None
            assert not usage.estimated, "the provider's usage is used, not an estimate"
            assert (usage.prompt_tokens, usage.completion_tokens) == (
                expect.usage.prompt_tokens,
                expect.usage.completion_tokens,
            )
            if expect.usage.total_tokens is not None:
                assert usage.total_tokens == expect.usage.total_tokens
            assert usage.cached_tokens == expect.usage.cached_tokens
            assert usage.cache_creation_tokens == expect.usage.cache_creation_tokens
            assert usage.reasoning_tokens == expect.usage.reasoning_tokens
        self._check_cost(sample, response.cost)

    @staticmethod
    def _check_cost(sample: WireSample, cost: Decimal | None) -> None:
        if sample.expect.cost_usd is not None:
            assert cost is not None, "the call was not priced"
            assert abs(cost - sample.expect.cost_usd) < Decimal("1e-9"), (
                f"cost {cost} != {sample.expect.cost_usd}"
            )

    def _check_error(self, client: Client, sample: WireSample) -> None:
        expected = sample.expect.error
        assert expected is not None
        cls = error_class_by_name(expected.type)
        with pytest.raises(ModelbusError) as info:
            self._call(client, sample)
        error = info.value
        assert isinstance(error, cls), f"expected {cls.__name__}, got {type(error).__name__}: {error}"
        assert error.provider == self.provider
        if expected.retryable is not None:
            assert error.retryable is expected.retryable
        if expected.retry_after is not None:
            assert error.retry_after == pytest.approx(expected.retry_after)
        if expected.provider_code is not None:
            assert error.provider_code == expected.provider_code
        if expected.status_code is not None:
            assert error.status_code == expected.status_code
        assert TEST_KEY not in str(error)
        assert TEST_KEY not in repr(error.to_dict())

    @staticmethod
    def _call(client: Client, sample: WireSample) -> object:
        """Make the sample's call to the end (streams are consumed)."""
        if sample.kind == "chat_stream":
            with client.chat(**{**sample.request, "stream": True}) as stream:
                return list(stream)
        if sample.kind == "embedding":
            return client.embed(**sample.request)
        return client.chat(**sample.request)

    # -- generic robustness ------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (401, "AuthenticationError"),
            (403, "PermissionDeniedError"),
            (404, "NotFoundError"),
            (429, "RateLimitError"),
            (500, "UpstreamServerError"),
            (503, "OverloadedError"),
        ],
    )
    def test_status_mapping(self, upstream: FakeUpstream, status: int, expected: str) -> None:
        """Bare statuses (no provider body) still map to the right typed error."""
        upstream.fail(status, body="", retry_after=2 if status == 429 else None)
        with self.make_client(upstream) as client, pytest.raises(ModelbusError) as info:
            client.chat(self.any_chat_model(), "hi")
        assert isinstance(info.value, error_class_by_name(expected)), repr(info.value)
        assert info.value.status_code == status
        if status == 429:
            assert info.value.retry_after == 2
            assert info.value.retryable

    def test_malformed_body(self, upstream: FakeUpstream) -> None:
        upstream.malformed()
        with self.make_client(upstream) as client, pytest.raises(MalformedResponseError):
            client.chat(self.any_chat_model(), "hi")

    def _stream_sample(self) -> WireSample:
        return next(
            s for s in load_samples(self.samples_dir) if s.kind == "chat_stream" and not s.expect.error
        )

    def test_truncated_stream(self, upstream: FakeUpstream) -> None:
        sample = self._stream_sample()
        upstream.replay(sample)
        upstream.truncate()
        with self.make_client(upstream, **sample.settings) as client, pytest.raises(MalformedResponseError):
            self._call(client, sample)

    def test_mid_stream_disconnect(self, upstream: FakeUpstream) -> None:
        sample = self._stream_sample()
        upstream.replay(sample)
        upstream.disconnect(after_events=2)
        with (
            self.make_client(upstream, **sample.settings) as client,
            pytest.raises((APIConnectionError, MalformedResponseError)),
            client.chat(**{**sample.request, "stream": True}) as stream,
        ):
            list(stream)

    def test_missing_key(self, upstream: FakeUpstream) -> None:
        """No key configured: a provider that needs one refuses before sending anything; a keyless
        provider (Ollama, local) calls without credentials."""
        info = self.plugin.provider_info  # type: ignore[attr-defined]
        if not info.requires_api_key:
            self._keyless_call(upstream)
            return
        client = Client(
            plugins=[self.plugin],
            load_entrypoints=False,
            config={},
            providers={self.provider: {"base_url": upstream.url}},
        )
        with pytest.MonkeyPatch.context() as patch:
            for var in info.api_key_env:
                patch.delenv(var, raising=False)
            with pytest.raises(MissingCredentialsError) as error:
                client.chat(self.any_chat_model(), "hi")
        assert info.api_key_env[0] in str(error.value) if info.api_key_env else True
        assert not upstream.requests, "no request goes out without a key"

    def _keyless_call(self, upstream: FakeUpstream) -> None:
        samples = load_samples(self.samples_dir)
        sample = next(s for s in samples if s.kind in ("chat", "chat_stream") and not s.expect.error)
        upstream.replay(sample)
        settings = {k: v for k, v in {**self.settings, **sample.settings}.items() if k != "api_key"}
        with Client(
            plugins=[self.plugin],
            load_entrypoints=False,
            config={},
            providers={self.provider: {**settings, "base_url": upstream.url}},
            max_retries=0,
        ) as client:
            self._call(client, sample)
        assert upstream.requests, "a keyless provider sends the request"
        assert "authorization" not in upstream.requests[-1].headers
