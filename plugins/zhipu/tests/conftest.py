from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config file or real key leaks into the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MODELBUS_CONFIG", raising=False)
    for var in ("ZHIPUAI_API_KEY", "ZHIPU_API_KEY", "ZHIPU_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
