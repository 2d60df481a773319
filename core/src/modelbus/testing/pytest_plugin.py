"""pytest fixtures shipped with modelbus (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def fake_upstream() -> Iterator[object]:
    """A started :class:`~modelbus.testing.FakeUpstream`, stopped after the test."""
    from modelbus.testing.fake_upstream import FakeUpstream

    with FakeUpstream() as upstream:
        yield upstream
