"""Identity, money and the ledger: keys, wallets under concurrency, budgets, limits, metering, invoices."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import sqlalchemy as sa
from harness import MASTER, GatewayThread

from modelbus.testing import FakeUpstream, ResponseSpec, SSEItem

MODEL = "deepseek/deepseek-chat"
MESSAGES = [{"role": "user", "content": "Tell me about the sea."}]


def ledger(gateway: GatewayThread) -> list[dict]:
    with gateway.service.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM ledger ORDER BY created_at"))]


def chat(gateway: GatewayThread, key: str, **kw: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "messages": MESSAGES, **kw},
        timeout=30,
    )


def cli(
    gateway: GatewayThread, tmp_path: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m modelbus *args`` against the gateway's database, with no config file of its own."""
    env = {
        "MODELBUS_DATABASE_URL": gateway.settings.database_url,
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "modelbus", *args], capture_output=True, text=True, env=env, check=check
    )


# -- identity -----------------------------------------------------------------------------------


def test_keys_are_stored_only_as_hashes_and_shown_once(gateway: GatewayThread) -> None:
    created = gateway.admin("POST", "/admin/keys", json={"team": "t1", "name": "ci"})
    key = created.json()["key"]
    with gateway.service.store.engine.connect() as conn:
        dump = json.dumps([list(map(str, row)) for row in conn.execute(sa.text("SELECT * FROM keys"))])
    assert key not in dump
    assert key.split("-", 2)[2] not in dump
    listed = gateway.admin("GET", "/admin/keys").json()["data"]
    assert all("key" not in row and "secret_hash" not in row for row in listed)
    assert [row["key_id"] for row in listed] == [key.split("-")[1]]


def test_admin_api_needs_the_master_key(gateway: GatewayThread) -> None:
    key = gateway.create_key()
    for headers in ({}, {"Authorization": f"Bearer {key}"}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(gateway.url + "/admin/keys", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_revoke_and_expiry(gateway: GatewayThread) -> None:
    key = gateway.create_key()
    assert chat(gateway, key).status_code == 200
    key_id = key.split("-")[1]
    assert gateway.admin("DELETE", f"/admin/keys/{key_id}").json()["revoked"] is True
    revoked = chat(gateway, key)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]
    expired = gateway.create_key(expires_at="2020-01-01T00:00:00Z")
    assert "expired" in chat(gateway, expired).json()["error"]["message"]
    assert gateway.admin("DELETE", "/admin/keys/nope").status_code == 404


def test_key_a_never_sees_key_b(gateway: GatewayThread) -> None:
    a = gateway.create_key(team="alpha", models=["deepseek/*"])
    b = gateway.create_key(team="beta", models=["openai/*"])
    assert chat(gateway, a).status_code == 200
    assert chat(gateway, b, model="openai/gpt-5.4-mini").status_code == 200
    usage_a = httpx.get(
        gateway.url + "/v1/usage?group_by=key,model", headers={"Authorization": f"Bearer {a}"}
    ).json()
    assert usage_a["key_id"] == a.split("-")[1]
    assert [row["key"] for row in usage_a["data"]] == [a.split("-")[1]]
    assert all(row["model"].startswith("deepseek/") for row in usage_a["data"])
    models_a = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {a}"}).json()["data"]
    assert not any(m["id"].startswith("openai/") for m in models_a)
    # asking for the other team's usage through the admin API needs the master key
    assert (
        httpx.get(
            gateway.url + "/admin/usage?team=beta", headers={"Authorization": f"Bearer {a}"}
        ).status_code
        == 401
    )


# -- limits and money -----------------------------------------------------------------------------


def test_rpm_limit(gateway: GatewayThread) -> None:
    key = gateway.create_key(rpm=2)
    assert chat(gateway, key).status_code == 200
    assert chat(gateway, key).status_code == 200
    limited = chat(gateway, key)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "2 requests per minute" in limited.json()["error"]["message"]


def test_budget_exhaustion(gateway: GatewayThread) -> None:
    key = gateway.create_key(budget_usd="0.00001")  # far below a worst-case reservation
    refused = chat(gateway, key, max_tokens=100)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "budget_exceeded"


def test_wallet_topup_spend_and_402(gateway: GatewayThread) -> None:
    key = gateway.create_key(team="wallet-team")
    gateway.admin("POST", "/admin/teams/wallet-team/wallet", json={"amount_usd": "0.0005"})
    assert chat(gateway, key, max_tokens=50).status_code == 200
    balance = Decimal(gateway.admin("GET", "/admin/wallets").json()["data"][0]["balance_usd"])
    # deepseek-chat: 10 prompt tokens at $0.14/M + 5 output at $0.28/M
    assert balance == Decimal("0.0005") - Decimal("0.0000028")
    broke = chat(gateway, key, max_tokens=100_000)
    assert broke.status_code == 402
    error = broke.json()["error"]
    assert error["code"] == "insufficient_funds"
    assert "Top up the wallet" in error["message"]


async def test_200_concurrent_requests_cannot_overspend_a_wallet(
    gateway: GatewayThread, upstream: FakeUpstream
) -> None:
    upstream.latency = 0.05  # keep requests in flight together
    key = gateway.create_key(team="tight")
    # each request reserves its worst case: prompt bound + 64 output tokens at deepseek-chat prices
    gateway.admin("POST", "/admin/teams/tight/wallet", json={"amount_usd": "0.0001"})
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)

    async def one() -> str:
        try:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64)
            return "ok"
        except openai.APIStatusError as error:
            return str(error.status_code)

    outcomes = await asyncio.gather(*(one() for _ in range(200)))
    await client.close()
    rows = [row for row in ledger(gateway) if row["team"] == "tight"]
    spent = sum(Decimal(str(row["cost_usd"])) for row in rows)
    reservation = max(Decimal(str(row["reserved_usd"])) for row in rows)
    assert set(outcomes) <= {"ok", "402"}
    assert len(rows) == 200  # every request is in the ledger once, the refused ones too
    assert outcomes.count("ok") == sum(row["status"] == "ok" for row in rows)
    refused = [row for row in rows if row["status"] == "refused"]
    assert len(refused) == outcomes.count("402")
    assert {(row["http_status"], row["error_type"], Decimal(str(row["cost_usd"]))) for row in refused} == {
        (402, "InsufficientFundsError", Decimal(0))
    }
    assert 0 < outcomes.count("ok") < 200
    assert spent <= Decimal("0.0001") + reservation
    assert gateway.service.state.reserved_total() == 0  # nothing held once all settled
    wallet = Decimal(gateway.admin("GET", "/admin/wallets").json()["data"][0]["balance_usd"])
    assert wallet == Decimal("0.0001") - spent


# -- the ledger -----------------------------------------------------------------------------------


def test_every_request_is_recorded_once_with_its_fields(
    gateway: GatewayThread, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(team="ledger")
    ok = chat(gateway, key)
    upstream.fail(400, body={"error": {"message": "nope"}})
    failed = chat(gateway, key)
    rows = ledger(gateway)
    assert [row["request_id"] for row in rows] == [
        ok.headers["x-modelbus-request-id"],
        failed.headers["x-modelbus-request-id"],
    ]
    good, bad = rows
    assert good["status"] == "ok"
    assert (good["prompt_tokens"], good["completion_tokens"], good["total_tokens"]) == (10, 5, 15)
    assert good["team"] == "ledger"
    assert good["key_id"] == key.split("-")[1]
    assert good["requested_model"] == MODEL
    assert good["resolved_model"] == MODEL
    assert good["provider"] == "deepseek"
    assert Decimal(str(good["cost_usd"])) == Decimal("0.0000028")
    assert good["latency_ms"] > 0
    assert json.loads(good["route"]) if isinstance(good["route"], str) else good["route"]
    assert bad["status"] == "error"
    assert bad["error_type"] == "BadRequestError"
    assert bad["http_status"] == 400
    assert Decimal(str(bad["cost_usd"])) == 0


def test_refused_requests_are_in_the_ledger_and_the_metrics(
    gateway: GatewayThread, upstream: FakeUpstream
) -> None:
    """Refusals at admission are requests too: one finished row each, no cost, nothing reserved."""
    key = gateway.create_key(team="refusals", models=["qwen/*"])
    other = gateway.create_key(team="refusals")
    slow = gateway.create_key(team="refusals", rpm=1)
    not_allowed = chat(gateway, key)
    not_json = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        content=b"{not json",
    )
    invalid = chat(gateway, other, messages=[])
    served = chat(gateway, slow)
    limited = chat(gateway, slow)  # the second in the minute
    anonymous = chat(gateway, "mb-nosuchkey-secret")
    answers = [not_allowed, not_json, invalid, limited]
    assert [r.status_code for r in answers] == [403, 400, 400, 429]
    assert (served.status_code, anonymous.status_code) == (200, 401)
    rows = {row["request_id"]: row for row in ledger(gateway)}
    ids = {r.headers["x-modelbus-request-id"] for r in [*answers, served]}
    assert set(rows) == ids  # the 401 has nobody to bill
    booked = [rows[r.headers["x-modelbus-request-id"]] for r in answers]
    assert [row["status"] for row in booked] == ["refused"] * 4
    assert [row["http_status"] for row in booked] == [403, 400, 400, 429]
    assert [row["error_type"] for row in booked] == [
        "ModelNotAllowedError",
        "BadRequestError",
        "BadRequestError",
        "GatewayRateLimitError",
    ]
    assert [row["requested_model"] for row in booked] == [MODEL, "", MODEL, MODEL]
    assert all(row["finished_at"] is not None and Decimal(str(row["cost_usd"])) == 0 for row in booked)
    assert gateway.service.state.reserved_total() == 0
    metrics = httpx.get(gateway.url + "/metrics").text
    refused = [line for line in metrics.splitlines() if line.startswith("modelbus_requests_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in refused if 'status="refused"' in line) == 5
    assert 'http_status="401"' in metrics


USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 12},
    "prompt_cache_hit_tokens": 100,
    "prompt_cache_miss_tokens": 20,
}


def test_streamed_and_plain_requests_are_metered_the_same(
    gateway: GatewayThread, upstream: FakeUpstream
) -> None:
    """Other gateways record streamed spend as zero; the ledger must show the same usage either way."""
    text = "The sea is wide."
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            json={
                "id": "p",
                "object": "chat.completion",
                "created": 1,
                "model": "deepseek-chat",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": USAGE,
            }
        ),
        stream=False,
    )
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(
                    data={
                        "id": "s",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "deepseek-chat",
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}],
                    }
                ),
                SSEItem(
                    data={
                        "id": "s",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "deepseek-chat",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                ),
                SSEItem(
                    data={
                        "id": "s",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "deepseek-chat",
                        "choices": [],
                        "usage": USAGE,
                    }
                ),
                SSEItem(data="[DONE]"),
            ]
        ),
        stream=True,
    )
    key = gateway.create_key()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    list(
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )  # no include_usage asked
    plain, streamed = ledger(gateway)
    columns = [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cost_usd",
        "usage_estimated",
        "status",
    ]
    assert [plain[c] for c in columns] == [streamed[c] for c in columns]
    assert (streamed["prompt_tokens"], streamed["cached_tokens"], streamed["reasoning_tokens"]) == (
        120,
        100,
        12,
    )
    assert Decimal(str(streamed["cost_usd"])) > 0
    assert streamed["stream"]
    assert not plain["stream"]
    assert streamed["ttft_ms"] is not None


def test_a_stream_without_usage_is_counted_not_zero(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(data={"id": "s", "choices": [{"index": 0, "delta": {"content": "some words here"}}]}),
                SSEItem(data={"id": "s", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                SSEItem(data="[DONE]"),
            ]
        ),
        stream=True,
    )
    key = gateway.create_key()
    list(
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=key).chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
    )
    row = ledger(gateway)[-1]
    assert row["usage_estimated"]
    assert row["prompt_tokens"] > 0
    assert row["completion_tokens"] > 0
    assert Decimal(str(row["cost_usd"])) > 0


def test_invoices_and_group_by(gateway: GatewayThread, tmp_path: Path) -> None:
    a = gateway.create_key(team="research")
    b = gateway.create_key(team="ops")
    for _ in range(3):
        chat(gateway, a)
    chat(gateway, b, model="openai/gpt-5.4-mini")
    grouped = gateway.admin("GET", "/admin/usage?group_by=team,model,day").json()["data"]
    research = next(row for row in grouped if row["team"] == "research")
    assert research["requests"] == 3
    assert research["model"] == MODEL
    assert len(research["day"]) == 10
    as_csv = gateway.admin("GET", "/admin/usage?group_by=provider&format=csv").text
    providers = {row["provider"]: row for row in csv.DictReader(io.StringIO(as_csv))}
    assert set(providers) == {"deepseek", "openai"}
    assert gateway.admin("GET", "/admin/usage?group_by=colour").status_code == 400
    # the CLI reads the same ledger
    from datetime import UTC, datetime

    month = datetime.now(UTC).strftime("%Y-%m")
    out = cli(
        gateway,
        tmp_path,
        "usage",
        "--team",
        "research",
        "--month",
        month,
        "--format",
        "json",
        "--group-by",
        "model",
    ).stdout
    invoice = json.loads(out)
    assert invoice["data"][0]["requests"] == 3
    assert Decimal(invoice["data"][0]["cost_usd"]) == Decimal("0.0000084")
    out = cli(
        gateway, tmp_path, "usage", "--team", "research", "--month", month, "--format", "csv", "--rows"
    ).stdout
    assert len(list(csv.DictReader(io.StringIO(out)))) == 3
    bad = cli(gateway, tmp_path, "usage", "--month", "Nov", check=False)
    assert bad.returncode == 1
    assert "month must look like 2026-11" in bad.stderr


def test_keys_cli_creates_a_working_key(gateway: GatewayThread, tmp_path: Path) -> None:
    created = cli(
        gateway,
        tmp_path,
        "keys",
        "create",
        "--team",
        "research",
        "--budget",
        "50",
        "--rpm",
        "60",
        "--models",
        "deepseek/*,qwen/*",
    )
    key = created.stdout.strip()
    assert key.startswith("mb-")
    assert "not shown again" in created.stderr
    assert chat(gateway, key).status_code == 200
    assert chat(gateway, key, model="openai/gpt-5.4-mini").status_code == 403
    listed = json.loads(cli(gateway, tmp_path, "keys", "list").stdout)
    assert listed[0]["budget_usd"] == "50.0000000000"
    assert listed[0]["models"] == ["deepseek/*", "qwen/*"]
    assert MASTER not in created.stdout + created.stderr


def test_rate_windows_stay_small_whatever_the_request_rate() -> None:
    from modelbus.gateway.state import WINDOW, InProcessState

    state = InProcessState()
    for _ in range(20_000):
        state.check_rate("key:limited", 1_000_000, 10**12, 50)
        state.check_rate("key:unlimited", None, None, 50)
        state.add_tokens("key:limited", -10)
        state.add_tokens("key:unlimited", -10)
    requests, tokens = state._requests["key:limited"], state._tokens["key:limited"]
    assert requests.total == 20_000
    assert tokens.total == 20_000 * 40
    assert len(requests.events) <= WINDOW / 0.1 + 1  # slots, not one entry per request
    assert "key:unlimited" not in state._requests
    assert "key:unlimited" not in state._tokens


def test_a_request_straddling_midnight_settles_in_the_period_it_reserved(monkeypatch) -> None:
    from datetime import UTC, datetime

    from modelbus.gateway import state as state_module
    from modelbus.gateway.state import Budget, InProcessState, bucket_key

    clock = {"now": datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)}

    class MovedClock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return clock["now"]

    monkeypatch.setattr(state_module, "datetime", MovedClock)
    state = InProcessState()
    state.set_wallet("research", Decimal("10"))
    budgets = [Budget("key:k1", Decimal("1"), "daily"), Budget("team:research", Decimal("5"), "monthly")]
    reservation = state.reserve(Decimal("0.6"), "research", budgets)

    clock["now"] = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)  # the day and the month roll over
    state.settle(reservation, Decimal("0.25"))

    assert state.reserved_total() == 0
    assert state.wallet_available("research") == Decimal("9.75")
    november = datetime(2026, 11, 30, tzinfo=UTC)
    assert state.spend(bucket_key("key:k1", "daily", november)) == Decimal("0.25")
    assert state.spend(bucket_key("team:research", "monthly", november)) == Decimal("0.25")
    assert all(amount == 0 for amount in state._reserved_budget.values())  # nothing held anywhere
    # the new period starts empty: the whole daily budget is available again
    state.settle(state.reserve(Decimal("1"), "research", budgets), Decimal("1"))
    assert state.spend(bucket_key("key:k1", "daily")) == Decimal("1")


def test_admin_limits_are_validated_for_keys_and_teams_alike(gateway: GatewayThread) -> None:
    bad = [
        ({"budget_period": "weekly"}, "budget_period"),
        ({"budget_usd": "-1"}, "budget_usd"),
        ({"budget_usd": "lots"}, "budget_usd"),
        ({"budget_usd": "NaN"}, "budget_usd"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": "100"}, "tpm"),
        ({"rpm": True}, "rpm"),
        ({"models": "deepseek/*"}, "models"),
        ({"shoe_size": 42}, "shoe_size"),
    ]
    for fields, param in bad:
        for method, path in (("POST", "/admin/keys"), ("PUT", "/admin/teams/validated")):
            response = gateway.admin(method, path, json=fields)
            assert response.status_code == 400, (path, fields, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["param"] == param, (path, fields, error)
    # nothing half-stored: the team was never created, no key exists
    assert gateway.service.store.get_team("validated") is None
    assert gateway.admin("GET", "/admin/keys").json()["data"] == []
    created = gateway.admin(
        "PUT", "/admin/teams/validated", json={"budget_period": "daily", "rpm": 5, "budget_usd": 0}
    )
    assert created.status_code == 200
    assert created.json()["budget_period"] == "daily"
    assert Decimal(created.json()["budget_usd"]) == 0  # a zero budget is shown, not dropped
    listed = gateway.admin("GET", "/admin/teams").json()["data"]
    assert [team["team"] for team in listed] == ["validated"]
    assert listed[0]["rpm"] == 5


def test_teams_cli_rejects_an_unknown_budget_period(gateway: GatewayThread, tmp_path: Path) -> None:
    result = cli(
        gateway, tmp_path, "teams", "set", "ops", "--budget", "5", "--budget-period", "weekly", check=False
    )
    assert result.returncode != 0
    assert "--budget-period is daily, monthly or total, got 'weekly'" in result.stderr
    assert "Traceback" not in result.stderr
    assert gateway.service.store.get_team("ops") is None
    result = cli(gateway, tmp_path, "keys", "create", "--budget", "-3", check=False)
    assert result.returncode != 0
    assert "--budget must be a finite amount" in result.stderr
    cli(gateway, tmp_path, "teams", "set", "ops", "--rpm", "7")
    listed = cli(gateway, tmp_path, "teams", "list")
    assert json.loads(listed.stdout)[0] == {
        "team": "ops",
        "budget_usd": None,
        "budget_period": "monthly",
        "rpm": 7,
        "tpm": None,
        "models": None,
    }


def test_a_stored_unknown_budget_period_is_a_clear_refusal_not_a_crash(gateway: GatewayThread) -> None:
    key = gateway.create_key(team="legacy")
    gateway.admin("PUT", "/admin/teams/legacy", json={"budget_usd": "5"})
    with gateway.service.store.engine.begin() as conn:  # what an older version let through
        conn.execute(sa.text("UPDATE teams SET budget_period = 'weekly' WHERE name = 'legacy'"))
    gateway.service.forget_team("legacy")
    response = chat(gateway, key)
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "team:legacy has the budget period 'weekly' stored" in message
    assert "modelbus teams set legacy --budget-period monthly" in message
    rows = [row for row in ledger(gateway) if row["team"] == "legacy"]
    assert [(row["status"], row["error_type"]) for row in rows] == [("refused", "ConfigError")]
    assert gateway.service.state.reserved_total() == 0


def test_an_expired_key_cache_entry_is_reloaded_once_not_once_per_request(gateway: GatewayThread) -> None:
    """Requests that miss the key cache together share one database load (no stampede under load)."""
    key = gateway.create_key(team="herd")
    svc = gateway.service
    store_get_key, loads = svc.store.get_key, []

    def slow_get_key(key_id: str) -> object:
        loads.append(key_id)
        time.sleep(0.2)  # every request below arrives while this load runs
        return store_get_key(key_id)

    svc.store.get_key = slow_get_key
    svc._keys.clear()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {key}"}
            responses = await asyncio.gather(*(client.get("/v1/models", headers=headers) for _ in range(20)))
            return [response.status_code for response in responses]

    try:
        assert asyncio.run(burst()) == [200] * 20
    finally:
        svc.store.get_key = store_get_key
    assert len(loads) == 1
    # a revoked key is still refused at once: revocation drops the cache entry
    key_id = key.split("-")[1]
    assert gateway.admin("DELETE", f"/admin/keys/{key_id}").status_code == 200
    response = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401


def test_a_failed_ledger_write_still_ends_the_request_in_flight(gateway: GatewayThread) -> None:
    """The in-flight count (a metric, and what decides whether a commit may skip the writer thread)
    goes down even when the durable write fails."""
    key = gateway.create_key()
    svc = gateway.service
    settle = svc.writer.settle

    async def failing_settle(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    svc.writer.settle = failing_settle
    try:
        assert chat(gateway, key).status_code == 500
    finally:
        svc.writer.settle = settle
    assert svc.in_flight == 0
    assert chat(gateway, key).status_code == 200
    assert svc.in_flight == 0
