"""Unit tests: langchain-tests' ``EmbeddingsUnitTests`` for ModelBusEmbeddings."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_modelbus import ModelBusEmbeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests


class TestModelBusEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[ModelBusEmbeddings]:
        return ModelBusEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "openai/text-embedding-3-small"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"MODELBUS_API_KEY": "mb-key", "MODELBUS_BASE_URL": "http://localhost:4000/v1"},
            {"model": "openai/text-embedding-3-small"},
            {"api_key": "mb-key", "base_url": "http://localhost:4000/v1"},
        )


def test_batches_and_empty_texts() -> None:
    embeddings = ModelBusEmbeddings(model="openai/text-embedding-3-small", chunk_size=2)
    assert embeddings._batches(["a", "", "c"]) == [["a", " "], ["c"]]
    assert embeddings._params("query") == {"input_type": "query"}
    assert ModelBusEmbeddings(model="x/y", dimensions=8, input_types=False, model_kwargs={"k": 1})._params(
        "document"
    ) == {"dimensions": 8, "extra": {"k": 1}}


def test_only_the_fake_upstream_host_is_reachable() -> None:
    """pytest-socket guards these tests: a connection anywhere but 127.0.0.1 fails before it is made."""
    import socket

    pytest_socket = pytest.importorskip("pytest_socket")
    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        socket.create_connection(("127.0.0.2", 9), timeout=1)  # loopback: harmless even if not blocked
