"""Config files and env vars, validated with errors that name the key and file; model addressing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from acme_provider import plugin as acme_plugin

from modelbus import Client
from modelbus.config import ModelbusConfig
from modelbus.errors import ConfigError, ModelNotFoundError


def client_with(config: dict | Path | str, **kw: object) -> Client:
    return Client(plugins=[acme_plugin], load_entrypoints=False, config=config, **kw)  # type: ignore[arg-type]


def test_no_config_file_means_defaults() -> None:
    config = ModelbusConfig.load()
    assert config.source == "(defaults)"
    assert config.client.max_retries == 2


def test_config_file_discovery_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "xdg" / "modelbus" / "config.toml"
    file.parent.mkdir(parents=True)
    file.write_text('default_model = "acme/acme-chat"\n[aliases]\nfast = "acme/acme-mini"\n')
    assert ModelbusConfig.load().default_model == "acme/acme-chat"

    other = tmp_path / "other.toml"
    other.write_text("[client]\nmax_retriez = 3\n")
    monkeypatch.setenv("MODELBUS_CONFIG", str(other))
    with pytest.raises(ConfigError) as error:
        ModelbusConfig.load()
    assert str(other) in str(error.value)
    assert "client.max_retriez" in str(error.value)

    monkeypatch.setenv("MODELBUS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        ModelbusConfig.load()

    broken = tmp_path / "broken.toml"
    broken.write_text("default_model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ModelbusConfig.load(broken)


def test_provider_settings_are_validated_by_name(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[providers.acme]\napi_kye = "x"\n')
    client = client_with(file)
    with pytest.raises(ConfigError) as error:
        client.chat("acme/acme-chat", "hi")
    assert "api_kye" in str(error.value)
    assert "[providers.acme]" in str(error.value)
    assert str(file) in str(error.value)

    with pytest.raises(ConfigError, match="region 'mars'"):
        client_with({"providers": {"acme": {"region": "mars", "api_key": "k"}}}).chat("acme/acme-chat", "hi")


def test_env_key_and_region_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "from-env")
    client = client_with({"providers": {"acme": {"region": "eu"}}})
    deployment = client.runtime.deployment(client.resolve("acme/acme-chat"))
    assert deployment.settings.secret() == "from-env"
    assert deployment.base_url == "https://eu.acme.test/v1"
    assert deployment.jurisdiction == "EU"
    monkeypatch.setenv("ACME_BASE_URL", "http://127.0.0.1:9/v1")
    other = client_with({})
    assert other.runtime.deployment(other.resolve("acme/acme-chat")).base_url == "http://127.0.0.1:9/v1"


def test_aliases_listing_and_suggestions() -> None:
    client = client_with({"aliases": {"fast": "acme/acme-mini", "quick": "fast"}})
    assert client.resolve("fast").id == "acme-mini"
    assert client.resolve("quick").id == "acme-mini"
    assert client.resolve("acme/chat").id == "acme-chat"  # alias from the model table
    assert [m.id for m in client.models("acme/acme-c*")] == ["acme-chat", "acme-cny"]
    assert len(client.models()) == 4

    with pytest.raises(ModelNotFoundError) as error:
        client.resolve("acme/acme-chta")
    assert "acme/acme-chat" in error.value.suggestions

    with pytest.raises(ModelNotFoundError) as error:
        client.resolve("acm/acme-chat")
    assert "not installed" in str(error.value)
    assert error.value.suggestions == ["acme/acme-chat"]

    with pytest.raises(ModelNotFoundError, match="not 'provider/model'"):
        client.resolve("nonsense")


def test_alias_loops_and_bad_alias_targets() -> None:
    with pytest.raises(ConfigError, match="alias loop"):
        client_with({"aliases": {"a": "b", "b": "a"}}).resolve("a")
    with pytest.raises(ConfigError, match="must point at a 'provider/model'"):
        client_with({"aliases": {"a": "nope"}}).resolve("a")


def test_config_models_add_and_override_rows() -> None:
    client = client_with(
        {
            "models": {
                "acme/acme-chat": {"context_window": 4096},
                "acme/new-model": {"context_window": 1000, "capabilities": ["streaming"]},
            }
        }
    )
    assert client.resolve("acme/acme-chat").context_window == 4096
    assert client.resolve("acme/acme-chat").price is not None  # the rest of the row is kept
    assert client.resolve("acme/new-model").context_window == 1000
    with pytest.raises(ConfigError, match=re.escape('models."acme/bad"')):
        client_with({"models": {"acme/bad": {"context_window": -1}}}).models()


def test_default_model_without_local_plugin_is_a_clear_error() -> None:
    from modelbus.errors import BadRequestError

    with pytest.raises(BadRequestError, match="no model given"):
        client_with({}).chat(None, "hello")
    assert client_with({"default_model": "acme/acme-mini"}).resolve(None).id == "acme-mini"
