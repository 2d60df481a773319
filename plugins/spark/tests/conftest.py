from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config file or real key leaks into the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MODELBUS_CONFIG", raising=False)
    monkeypatch.delenv("SPARK_API_PASSWORD", raising=False)
    monkeypatch.delenv("SPARK_BASE_URL", raising=False)
