"""The CLI, run in-process with the acme provider and a real FakeUpstream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from acme_provider import plugin as acme_plugin
from typer.testing import CliRunner

from modelbus import plugins as plugins_module
from modelbus.cli import app
from modelbus.plugins import PluginHost
from modelbus.testing import FakeUpstream

from .conftest import KEY


@pytest.fixture
def cli_env(upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    host = PluginHost(load_entrypoints=False, plugins=[acme_plugin])
    monkeypatch.setattr(plugins_module, "_default_host", host)
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.acme]\napi_key = "{KEY}"\nbase_url = "{upstream.url}"\n')
    monkeypatch.setenv("MODELBUS_CONFIG", str(config))
    return config


runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "modelbus 0.1.0" in result.output


def test_plugins_and_models(cli_env: Path) -> None:
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "modelbus-acme" in result.output
    result = runner.invoke(app, ["models", "--json"])
    rows = json.loads(result.output)
    assert {row["full_id"] for row in rows} == {
        "acme/acme-chat",
        "acme/acme-mini",
        "acme/acme-cny",
        "acme/acme-embed",
    }
    cny = next(row for row in rows if row["full_id"] == "acme/acme-cny")
    assert cny["price"]["currency"] == "CNY"
    assert cny["price_usd_per_million"]["input"] == "0.2810"
    result = runner.invoke(app, ["models", "acme/acme-c*"])
    assert "acme/acme-chat" in result.output
    assert "acme/acme-mini" not in result.output
    result = runner.invoke(app, ["models", "nothing/*"])
    assert result.exit_code == 1
    assert "no models match" in result.output


def test_chat_streams_and_reports_tokens_and_cost(cli_env: Path) -> None:
    result = runner.invoke(app, ["chat", "-m", "acme/acme-chat", "hello"])
    assert result.exit_code == 0, result.output
    assert "Hello from acme." in result.output
    assert "10 in (0 cached) + 5 out tokens, $0.000075" in result.output
    result = runner.invoke(app, ["chat", "-m", "acme/acme-chat", "--no-stream", "-s", "be nice", "hello"])
    assert "Hello from acme." in result.output


def test_chat_without_model_uses_the_configured_default(cli_env: Path) -> None:
    cli_env.write_text('default_model = "acme/acme-mini"\n' + cli_env.read_text())
    result = runner.invoke(app, ["chat", "hello"])
    assert result.exit_code == 0, result.output
    assert "using acme/acme-mini" in result.output


def test_errors_are_one_line_without_traceback(upstream: FakeUpstream, tmp_path: Path) -> None:
    # through the real console script: a bad config file is named, no traceback, exit code 1
    config = tmp_path / "bad.toml"
    config.write_text("[client]\nmax_retriez = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "modelbus", "chat", "-m", "x/y", "hi"],
        capture_output=True,
        text=True,
        env={"MODELBUS_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "client.max_retriez" in result.stderr
    assert str(config) in result.stderr


def test_unknown_model_error(cli_env: Path) -> None:
    from modelbus.cli import main

    result = runner.invoke(app, ["chat", "-m", "acme/acme-chta", "hi"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "did you mean 'acme/acme-chat'" in str(result.exception)
    assert main is not None
