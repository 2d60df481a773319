"""Shared fixtures: a FakeUpstream with modelbus's deterministic responder, and an isolated environment.

Every test here runs offline: pytest-socket (when installed, as langchain-tests does) is told to allow only
127.0.0.1, where the fake upstream listens, so a stray call to a real provider fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelbus.testing import FakeUpstream
from modelbus.testing.responders import smart_openai_responder

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.allow_hosts(["127.0.0.1"]))


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh recording server, for tests that look at what was sent."""
    with FakeUpstream() as server:
        server.respond_with(smart_openai_responder())
        yield server


@pytest.fixture(autouse=True)
def _isolated(modelbus_isolated_env: None) -> None:
    """No user config file, real key or real endpoint leaks into the tests (modelbus's pytest plugin)."""
