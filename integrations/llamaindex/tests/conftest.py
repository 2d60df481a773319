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


@pytest.fixture(scope="session")
def smart_upstream() -> Iterator[FakeUpstream]:
    """One deterministic OpenAI-compatible server for the whole session (it keeps no per-test state
    that matters: ids count up, and repeated long prompts report cached tokens)."""
    with FakeUpstream() as upstream:
        upstream.record = False
        upstream.respond_with(smart_openai_responder())
        yield upstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh recording server, for tests that look at what was sent."""
    with FakeUpstream() as server:
        server.respond_with(smart_openai_responder())
        yield server


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config file, gateway settings or real keys leak into tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in (
        "MODELBUS_CONFIG",
        "MODELBUS_BASE_URL",
        "MODELBUS_API_KEY",
        "DEEPSEEK_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
