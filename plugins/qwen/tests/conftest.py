from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(modelbus_isolated_env: None) -> None:
    """No user config file, real key or real endpoint leaks into the tests (modelbus's pytest plugin)."""
