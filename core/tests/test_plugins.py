"""Discovery, isolation of broken plugins, cross-cutting hooks, and lazy import."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import fixture_plugins as fx
import pytest
from acme_provider import plugin as acme_plugin

from modelbus import Client
from modelbus.config import ModelbusConfig
from modelbus.errors import BadRequestError
from modelbus.plugins import PluginHost
from modelbus.runtime import Runtime
from modelbus.testing import FakeUpstream, openai_chat_responder

from .conftest import KEY


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *specs: tuple[str, str]) -> None:
    points = [metadata.EntryPoint(name=name, value=value, group="modelbus") for name, value in specs]
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [p for p in points if p.group == group])


def test_broken_plugins_are_reported_and_others_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fx, "typo", fx.TypoPlugin(), raising=False)
    monkeypatch.setattr(fx, "badargs", fx.BadArgsPlugin(), raising=False)
    monkeypatch.setattr(fx, "raising", fx.RaisingRegister(), raising=False)
    monkeypatch.setattr(fx, "notinfo", fx.NotAProviderInfo(), raising=False)
    monkeypatch.setattr(fx, "dup", fx.DuplicateAcme(), raising=False)
    fake_entry_points(
        monkeypatch,
        ("acme", "acme_provider:plugin"),
        ("broken", "broken_import_plugin:plugin"),
        ("missing-attr", "acme_provider:no_such_object"),
        ("typo", "fixture_plugins:typo"),
        ("badargs", "fixture_plugins:badargs"),
        ("raising", "fixture_plugins:raising"),
        ("notinfo", "fixture_plugins:notinfo"),
        ("dup", "fixture_plugins:dup"),
    )
    host = PluginHost()
    host.load()
    by_name = {record.name: record for record in host.records}
    assert by_name["acme"].ok
    assert by_name["acme"].providers == ["acme"]
    assert "modelbus_translate_request" in by_name["acme"].hooks
    assert "a_dependency_that_is_not_installed" in (by_name["broken"].error or "")
    assert "failed to import" in (by_name["missing-attr"].error or "")
    assert "modelbus_translate_requests" in (by_name["typo"].error or "")
    assert "violates the hook specs" in (by_name["badargs"].error or "")
    assert "boom while registering" in (by_name["raising"].error or "")
    assert "ProviderInfo" in (by_name["notinfo"].error or "")
    assert "already registered by plugin 'acme'" in (by_name["dup"].error or "")
    assert set(host.providers) == {"acme"}
    host.pm.check_pending()  # nothing unknown stays registered
    # the good plugin still works end to end
    with FakeUpstream() as upstream:
        upstream.respond_with(openai_chat_responder("still works"))
        runtime = Runtime(
            config=ModelbusConfig(),
            host=host,
            provider_overrides={"acme": {"api_key": KEY, "base_url": upstream.url}},
        )
        assert Client(runtime=runtime).chat("acme/acme-chat", "hi").text == "still works"


def test_load_plugins_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(
        monkeypatch, ("acme", "acme_provider:plugin"), ("broken", "broken_import_plugin:plugin")
    )
    monkeypatch.setenv("MODELBUS_LOAD_PLUGINS", "acme")
    host = PluginHost()
    host.load()
    assert [r.name for r in host.records] == ["modelbus.builtin", "acme"]
    monkeypatch.setenv("MODELBUS_LOAD_PLUGINS", "")
    host = PluginHost()
    host.load()
    assert [r.name for r in host.records] == ["modelbus.builtin"]
    monkeypatch.delenv("MODELBUS_LOAD_PLUGINS")
    monkeypatch.setenv("MODELBUS_BLOCK_PLUGINS", "broken")
    host = PluginHost()
    host.load()
    assert [r.name for r in host.records] == ["modelbus.builtin", "acme"]


def test_register_in_code(upstream: FakeUpstream) -> None:
    client = Client(
        load_entrypoints=False, config={}, providers={"acme": {"api_key": KEY, "base_url": upstream.url}}
    )
    record = client.register_plugin(acme_plugin)
    assert record.ok
    assert record.name == "modelbus-acme"
    assert client.chat("acme/acme-chat", "hi").text == "Hello from acme."


def make(upstream: FakeUpstream, *plugins: object) -> Client:
    return Client(
        plugins=[acme_plugin, *plugins],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )


def test_a_wrapper_changes_one_step_of_an_existing_provider(upstream: FakeUpstream) -> None:
    assert make(upstream, fx.Shouting()).chat("acme/acme-chat", "hi").text == "HELLO FROM ACME."


def test_tryfirst_overrides_authentication(upstream: FakeUpstream) -> None:
    make(upstream, fx.ExtraHeader()).chat("acme/acme-chat", "hi")
    sent = upstream.requests[-1].headers
    assert sent["authorization"] == "Signed " + KEY[::-1]
    assert sent["x-signed"] == "yes"


def test_before_call_short_circuits_and_guards_and_after_call_observes(upstream: FakeUpstream) -> None:
    cache = fx.Cache()
    client = make(upstream, cache, fx.BrokenObserver())
    assert client.chat("acme/acme-chat", "cached?").text == "hit"
    assert not upstream.requests
    with pytest.raises(BadRequestError, match="guardrail"):
        client.chat("acme/acme-chat", "forbidden")
    response = client.chat("acme/acme-chat", "hello")  # the broken observer does not break the call
    assert cache.seen[-1][0] is response
    with client.chat("acme/acme-chat", "hello", stream=True) as stream:
        list(stream)
    assert cache.seen[-1][0].text == "Hello from acme."  # streams report the accumulated response
    upstream.fail(400, body={"error": {"message": "nope"}})
    with pytest.raises(BadRequestError):
        client.chat("acme/acme-chat", "hello")
    assert isinstance(cache.seen[-1][1], BadRequestError)


def test_importing_modelbus_and_creating_a_client_is_lazy() -> None:
    code = (
        "import sys, modelbus; modelbus.Client(); "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'pydantic', 'modelbus.types', 'typer', 'rich') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
