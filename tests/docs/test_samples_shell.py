"""Every code sample of the CLI-heavy pages runs (the other half of test_samples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sandbox import PAGES, SHELL_PAGES, run_page

SHELL = [p for p in PAGES if p.stem in SHELL_PAGES]


def test_shell_pages_exist() -> None:
    assert sorted(p.stem for p in SHELL) == sorted(SHELL_PAGES)


@pytest.mark.parametrize("page", SHELL, ids=[p.stem for p in SHELL])
def test_page_samples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(page, tmp_path, monkeypatch)
