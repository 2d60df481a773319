"""Find the code samples in the documentation pages.

Every fenced block in ``docs/*.md`` has a language, and the language says what the docs tests do:

==========  ==========================================================================================
``python``  run, in page order, in one namespace per page (a later block sees an earlier one's names)
``bash``    run with ``bash -e``, one process per block, in a sandbox (see ``test_samples.py``)
``toml``    parsed; a ``config.toml`` snippet is validated by modelbus's config model (and the gateway
            settings), a ``models.toml`` snippet (one with ``[[models]]``) by the model-table loader
``json``    parsed
``text``    output, directory trees, diagrams: not code, not run
==========  ==========================================================================================

A block that must not run is marked on the line before its fence, visibly in the page source:

    <!-- no-test: install -->        installs packages (pip, apt, a virtual environment)
    <!-- no-test: server -->         starts a server that runs until stopped (``modelbus serve``)
    <!-- no-test: network -->        needs the real internet (a real provider key, a package index)

Nothing else may be skipped; a fence without a language, or with another language, fails the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUN = ("python", "bash")
CHECK = ("toml", "json")
INERT = ("text",)
SKIP_REASONS = ("install", "server", "network")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_NO_TEST = re.compile(r"^\s*<!--\s*no-test:\s*(?P<reason>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # path relative to docs/
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the no-test reason, if marked

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page of the site (the generator hook's folder is code, not a page)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.relative_to(DOCS).parts)


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(DOCS).as_posix()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        lang = match["info"].strip().split(" ")[0] if match["info"].strip() else ""
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(rf"^[ \t]*{fence}\s*$", lines[index]):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1  # the closing fence
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = _NO_TEST.match(previous)
        found.append(
            Block(
                page=page,
                line=start + 1,
                lang=lang,
                code="\n".join(body) + "\n",
                skip=marker["reason"] if marker else None,
            )
        )
    return found


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks(path)]
