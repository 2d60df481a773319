"""The README's offline example and examples/gateway.py --offline run as documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from langchain_core.tools import tool

ROOT = Path(__file__).parents[2]


def test_readme_offline_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (offline,) = [block for block in blocks if "FakeUpstream" in block]

    @tool
    def get_weather(location: str) -> str:
        """Get the current weather at a location."""
        return "sunny"

    exec(compile(offline, "README.md", "exec"), {"get_weather": get_weather})  # noqa: S102
    assert capsys.readouterr().out.splitlines() == ["You said: Hello", "{'location': 'Paris'}"]


def test_gateway_example_offline(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gateway_example", ROOT / "examples" / "gateway.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module.main(["--offline"])
    assert lines[0] == "chain: You said: Say hello to Ada in one sentence."
    assert lines[1] == "tool call: get_weather({'location': 'Lisbon'}) -> It is sunny in Lisbon."
    assert lines[2] == "structured: Movie(title='Alien', year=1979)"
    assert lines[3].endswith("model deepseek/deepseek-chat")
    assert capsys.readouterr().out.splitlines() == lines
