"""pytest fixtures shipped with modelbus (registered through the ``pytest11`` entry point).

Provider and integration test suites opt in from their ``conftest.py``::

    @pytest.fixture(autouse=True)
    def _isolated(modelbus_isolated_env: None) -> None:
        pass
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelbus.testing.fake_upstream import FakeUpstream

#: Environment variables that carry credentials or endpoints and must not leak into a test.
SECRET_SUFFIXES = ("_API_KEY", "_API_PASSWORD", "_API_SECRET", "_BASE_URL")


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started :class:`~modelbus.testing.FakeUpstream`, stopped after the test."""
    from modelbus.testing.fake_upstream import FakeUpstream

    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def modelbus_isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config file, gateway setting, real key or real endpoint leaks into the test.

    Points ``XDG_CONFIG_HOME`` at an empty folder and removes every ``MODELBUS_*`` variable and
    every ``*_API_KEY``, ``*_API_PASSWORD``, ``*_API_SECRET`` and ``*_BASE_URL`` variable.
    """
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("MODELBUS_") or name.endswith(SECRET_SUFFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def modelbus_smart_upstream() -> Iterator[FakeUpstream]:
    """One OpenAI-compatible fake server with the deterministic smart responder, for a whole session.

    It does not record requests (ids count up, and repeated long prompts report cached tokens);
    use :func:`fake_upstream` where a test looks at what was sent.
    """
    from modelbus.testing.fake_upstream import FakeUpstream
    from modelbus.testing.responders import smart_openai_responder

    with FakeUpstream() as upstream:
        upstream.record = False
        upstream.respond_with(smart_openai_responder())
        yield upstream
