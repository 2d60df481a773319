"""Virtual models through the gateway: failover, explanations, billing once, headers, probes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
from harness import UPSTREAM_KEY, GatewayThread, provider_config

from modelbus.testing import FakeUpstream, ResponseSpec, openai_chat_responder


@pytest.fixture
def backup() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.respond_with(openai_chat_responder("Hello from the backup."))
        yield server


def routed_gateway(
    upstream: FakeUpstream, backup: FakeUpstream, tmp_path: Path, **router: object
) -> GatewayThread:
    config = provider_config(
        upstream,
        router={
            "deployments": {
                "deepseek-backup": {
                    "provider": "deepseek",
                    "model": "deepseek-chat",
                    "settings": {"base_url": backup.url, "api_key": UPSTREAM_KEY},
                }
            },
            "models": {
                "router/chat": {
                    "policy": "fallback",
                    "affinity": False,
                    "candidates": ["deepseek/deepseek-chat", "deepseek-backup"],
                    "tasks": {"code": "router/code"},
                },
                "router/code": {"policy": "fallback", "candidates": ["openai/gpt-5.4-mini"]},
            },
            "probe_interval": 0,
            **router,
        },
    )
    return GatewayThread(config, database_url=f"sqlite:///{tmp_path / 'r.db'}").start()


@pytest.fixture
def routed(upstream: FakeUpstream, backup: FakeUpstream, tmp_path: Path) -> Iterator[GatewayThread]:
    server = routed_gateway(upstream, backup, tmp_path)
    yield server
    server.stop()


def ledger(gateway: GatewayThread) -> list[dict]:
    with gateway.service.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM ledger ORDER BY created_at"))]


def test_failover_is_explained_and_billed_once(routed: GatewayThread, upstream: FakeUpstream) -> None:
    key = routed.create_key(models=["router/*"])
    upstream.fail(503, times=3)  # the primary's retries all fail too
    raw = httpx.post(
        routed.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "router/chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert raw.status_code == 200
    assert raw.json()["choices"][0]["message"]["content"] == "Hello from the backup."
    header = raw.headers["x-modelbus-route"]
    assert "policy=fallback" in header
    assert "deepseek/deepseek-chat:error" in header
    assert "deepseek-backup:ok" in header
    row = ledger(routed)[-1]
    assert row["status"] == "ok"
    assert row["provider"] == "deepseek"
    assert row["resolved_model"] == "deepseek/deepseek-chat"
    route = row["route"] if isinstance(row["route"], dict) else json.loads(row["route"])
    assert [a["outcome"] for a in route["attempts"]] == ["error", "error", "error", "ok"]  # every attempt
    assert Decimal(str(row["cost_usd"])) == Decimal("0.0000028")  # only the serving attempt is billed
    admin = routed.admin("GET", f"/admin/requests/{raw.headers['x-modelbus-request-id']}").json()
    assert admin["route"]["resolved"] == "deepseek-backup"
    assert [c["deployment"] for c in admin["route"]["candidates"]] == [
        "deepseek/deepseek-chat",
        "deepseek-backup",
    ]


def test_virtual_models_are_listed_and_permissioned(routed: GatewayThread) -> None:
    scoped = openai.OpenAI(base_url=routed.url + "/v1", api_key=routed.create_key(models=["router/chat"]))
    ids = [m.id for m in scoped.models.list()]
    assert "router/chat" in ids
    assert "router/code" not in ids
    with pytest.raises(openai.PermissionDeniedError):
        scoped.chat.completions.create(model="router/code", messages=[{"role": "user", "content": "x"}])


def test_routing_headers_pick_the_task(routed: GatewayThread, upstream: FakeUpstream) -> None:
    key = routed.create_key()
    raw = httpx.post(
        routed.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "x-modelbus-task": "code"},
        json={"model": "router/chat", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert raw.status_code == 200
    assert "chose=openai/gpt-5.4-mini" in raw.headers["x-modelbus-route"]
    assert upstream.requests[-1].json["model"] == "gpt-5.4-mini"
    bad = httpx.post(
        routed.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "x-modelbus-min-quality-tier": "nine"},
        json={"model": "router/chat", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert bad.status_code == 400


def test_a_streamed_request_fails_over_before_the_first_token(
    routed: GatewayThread, upstream: FakeUpstream
) -> None:
    upstream.disconnect(after_events=1, times=3)
    client = openai.OpenAI(base_url=routed.url + "/v1", api_key=routed.create_key(), max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="router/chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the backup."


def test_no_route_is_a_503_that_says_why(routed: GatewayThread) -> None:
    key = routed.create_key()
    response = httpx.post(
        routed.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "x-modelbus-regions-allow": "EU"},
        json={"model": "router/chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 503
    assert "region CN not allowed" in response.json()["error"]["message"]
    row = routed.admin("GET", f"/admin/requests/{response.headers['x-modelbus-request-id']}").json()
    assert (row["status"], row["http_status"], row["error_type"]) == ("error", 503, "NoRouteError")
    assert (row["resolved_model"], row["provider"]) == (None, None)  # nothing was tried
    route = row["route"] if isinstance(row["route"], dict) else json.loads(row["route"])
    assert route["resolved"] is None
    assert route["attempts"] == []
    assert {c["deployment"]: c["excluded"] for c in route["candidates"]} == {
        "deepseek/deepseek-chat": "region CN not allowed",
        "deepseek-backup": "region CN not allowed",
    }


def test_active_probes_open_the_breaker_before_any_request_fails(
    upstream: FakeUpstream, backup: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add("GET", "/models", ResponseSpec(status=500, json={"error": {"message": "down"}}))
    backup.add("GET", "/models", ResponseSpec(json={"object": "list", "data": []}))
    server = routed_gateway(
        upstream, backup, tmp_path, probe_interval=0.05, breaker={"failures": 2, "window": 30, "cooldown": 60}
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if server.service.client.runtime.router.health.get("deepseek/deepseek-chat").state == "open":
                break
            time.sleep(0.05)
        before = [r for r in upstream.requests if r.path == "/chat/completions"]
        key = server.create_key()
        raw = httpx.post(
            server.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "router/chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert raw.json()["choices"][0]["message"]["content"] == "Hello from the backup."
        assert [r for r in upstream.requests if r.path == "/chat/completions"] == before  # never tried
        assert (
            "circuit open"
            in server.admin("GET", f"/admin/requests/{raw.headers['x-modelbus-request-id']}").json()["route"][
                "candidates"
            ][0]["excluded"]
        )
    finally:
        server.stop()
