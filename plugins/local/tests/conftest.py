"""Fixtures for modelbus-local: a tiny random-weight llama GGUF written with llama.cpp's own ``gguf``
writer (no binary in git), and clients configured to run it.

The tiny model has the real shape of a llama GGUF (SentencePiece vocabulary with byte fallback, a chat
template, 2 layers, 64-dim embeddings), so the tests exercise the real llama-cpp-python loading, chat
templating, tokenizing, sampling and streaming code through modelbus; only the weights are random. The
weights are arranged so that output stays readable: every token embedding shares a large constant
component, which makes ``output.weight[:, 0]`` act as a per-token bias (words likely, bytes unlikely,
``</s>`` never chosen, so generation always runs to ``max_tokens`` unless a stop sequence ends it).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelbus import AsyncClient, Client

WORDS = (  # noqa: SIM905 - a sentence is easier to read than fifty quoted words
    "hello world the a of and to in is it you that he was for on are with as his they be at one have"
    " this from or had by word but what some we can out other were all there when up use your how"
    " said an each she"
).split()
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
TINY_CONTEXT = 2048
TINY_EMBEDDING = 64


def _require(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"modelbus-local's tests need {module}: {install}", pytrace=False)


def write_tiny_llama_gguf(
    path: Path, *, n_ctx: int = TINY_CONTEXT, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE
) -> Path:
    """Write a ~0.5 MB llama-architecture GGUF with random F32 weights; returns ``path``."""
    _require("gguf", "pip install gguf (listed in requirements-dev.txt)")
    import gguf

    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for byte in range(256):  # byte fallback: any text tokenizes
        tokens.append(f"<0x{byte:02X}>")
        types.append(gguf.TokenType.BYTE)
    pieces = ["\u2581", *"abcdefghijklmnopqrstuvwxyz"]
    for word in WORDS:  # every prefix, so that SentencePiece's pair merges can reach the whole word
        pieces += [
            f"\u2581{word[:end]}" for end in range(1, len(word) + 1) if f"\u2581{word[:end]}" not in pieces
        ]
    first_piece = len(tokens)
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * first_piece + [float(len(piece)) for piece in pieces]
    n_vocab, n_embd, n_head, n_head_kv, n_ff, n_layer = len(tokens), TINY_EMBEDDING, 4, 2, 128, 2
    head_dim = n_embd // n_head

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def weights(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embeddings = weights(n_vocab, n_embd, scale=0.1)
    embeddings[:, 0] = 10.0  # the shared constant component
    output = weights(n_vocab, n_embd, scale=1.0)
    output[:, 0] = -0.5  # bytes and control tokens: unlikely
    output[first_piece:, 0] = 0.5  # letters and words: likely
    output[2, 0] = -2.0  # </s>: never
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for layer in range(n_layer):
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.attn_q.weight", weights(n_embd, n_embd))
        writer.add_tensor(f"blk.{layer}.attn_k.weight", weights(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{layer}.attn_v.weight", weights(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{layer}.attn_output.weight", weights(n_embd, n_embd))
        writer.add_tensor(f"blk.{layer}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.ffn_gate.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"blk.{layer}.ffn_up.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"blk.{layer}.ffn_down.weight", weights(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(autouse=True)
def _isolated(modelbus_isolated_env: None) -> None:
    """No user config file, real key or real endpoint leaks into the tests (modelbus's pytest plugin)."""


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("llama_cpp", 'pip install "llama-cpp-python>=0.3.7" (see plugins/local/README.md)')
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_gguf_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model (other weights): a different model for the engine."""
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-b.gguf", seed=1)


def local_config(models: dict[str, Path], **settings: Any) -> dict[str, Any]:
    # one thread: a model this small is dominated by thread hand-offs, badly so on a busy 2-core runner
    local = {"models": {alias: str(path) for alias, path in models.items()}, "n_threads": 1, **settings}
    return {"providers": {"local": local}}


def _client(cls: type[Any], models: dict[str, Path], options: dict[str, Any] | None, **settings: Any) -> Any:
    import modelbus_local

    return cls(
        config=local_config(models, **settings),
        plugins=[modelbus_local.plugin],
        load_entrypoints=False,
        **{"max_retries": 0, **(options or {})},
    )


@pytest.fixture
def gguf_writer() -> Any:
    """``write_tiny_llama_gguf(path, n_ctx=..., seed=..., chat_template=...)``."""
    return write_tiny_llama_gguf


@pytest.fixture
def tiny_models(tiny_gguf: Path, tiny_gguf_b: Path) -> dict[str, Path]:
    return {"tiny": tiny_gguf, "tiny-b": tiny_gguf_b}


@pytest.fixture
def make_client(tiny_models: dict[str, Path]) -> Iterator[Any]:
    """``make_client(models=None, options=None, **settings)``: a sync Client on the local plugin only,
    with ``[providers.local]`` settings and Client keyword ``options`` (closed after the test)."""
    made: list[Client] = []

    def make(
        models: dict[str, Path] | None = None, options: dict[str, Any] | None = None, **settings: Any
    ) -> Client:
        made.append(_client(Client, tiny_models if models is None else models, options, **settings))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_async_client(tiny_models: dict[str, Path]) -> Any:
    def make(
        models: dict[str, Path] | None = None, options: dict[str, Any] | None = None, **settings: Any
    ) -> AsyncClient:
        return _client(AsyncClient, tiny_models if models is None else models, options, **settings)

    return make


@pytest.fixture
def client(make_client: Any) -> Client:
    return make_client()


@pytest.fixture
async def aclient(make_async_client: Any) -> Any:
    async with make_async_client() as client:
        yield client
