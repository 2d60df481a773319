"""The README's offline RAG example and examples/gateway_rag.py --offline run as documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_readme_offline_rag_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (offline,) = [block for block in blocks if "FakeUpstream" in block]
    exec(compile(offline, "README.md", "exec"), {})  # noqa: S102
    assert capsys.readouterr().out.splitlines() == ["Cats love to eat fish."]


def test_gateway_rag_example_offline(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gateway_rag_example", ROOT / "examples" / "gateway_rag.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module.main(["--offline"])
    assert lines[1] == "source: " + module.DOCUMENTS[1].text  # retrieval picked the gateway document
    assert lines[2].startswith("answer: You said: Context information is below.")
    assert lines[3] == "agent: The multiply returned 42."
    assert capsys.readouterr().out.splitlines() == lines
