"""Fixtures for the cross-package tests: FakeUpstream providers behind a real gateway."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "gateway"))

from harness import GatewayThread, provider_config

from modelbus.testing import FakeUpstream, openai_chat_responder


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    for var in (
        "MODELBUS_CONFIG",
        "MODELBUS_MASTER_KEY",
        "MODELBUS_DATABASE_URL",
        "OPENAI_API_KEY",
        "DEEPSEEK_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.respond_with(openai_chat_responder("Hello from the upstream."))
        yield server


@pytest.fixture
def gateway(upstream: FakeUpstream, tmp_path: Path) -> Iterator[GatewayThread]:
    server = GatewayThread(provider_config(upstream), database_url=f"sqlite:///{tmp_path / 'gw.db'}").start()
    yield server
    server.stop()
