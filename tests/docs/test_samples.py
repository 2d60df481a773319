"""Every code sample in docs/ runs: one test per page, in the sandbox of sandbox.py.

The pages in ``SHELL_PAGES`` run from test_samples_shell.py, so that pytest-xdist runs both halves at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sandbox import PAGES, SHELL_PAGES, run_page

OTHERS = [p for p in PAGES if p.stem not in SHELL_PAGES]


@pytest.mark.parametrize("page", OTHERS, ids=[p.stem for p in OTHERS])
def test_page_samples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(page, tmp_path, monkeypatch)
