from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "acme"))

from acme_provider import plugin as acme_plugin

from modelbus import AsyncClient, Client
from modelbus.testing import FakeUpstream, openai_chat_responder

KEY = "sk-acme-secret-key-1234567890"


@pytest.fixture(autouse=True)
def _isolated(modelbus_isolated_env: None) -> None:
    """No user config file, real key or real endpoint leaks into the tests (modelbus's pytest plugin)."""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.respond_with(openai_chat_responder("Hello from acme."))
        yield server


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[Client]:
    with Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    ) as c:
        yield c


@pytest.fixture
async def aclient(upstream: FakeUpstream) -> AsyncClient:
    c = AsyncClient(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )
    yield c
    await c.aclose()
