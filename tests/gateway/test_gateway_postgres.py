"""The ledger, wallets and invoices on a real PostgreSQL server started by this test run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest
import sqlalchemy as sa
from harness import GatewayThread, provider_config
from ledger_rows import assert_writer_stores_what_sqlalchemy_stores
from postgres import PostgresServer

from modelbus.gateway.db import open_database
from modelbus.testing import FakeUpstream

pytestmark = pytest.mark.postgres
MODEL = "deepseek/deepseek-chat"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    existing = os.environ.get("MODELBUS_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return
    server = PostgresServer()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def pg_gateway(postgres_url: str, upstream: FakeUpstream) -> Iterator[GatewayThread]:
    server = GatewayThread(provider_config(upstream), database_url=fresh_database(postgres_url)).start()
    yield server
    server.stop()


def test_the_ledger_writer_stores_exactly_what_sqlalchemy_would_on_postgres(postgres_url: str) -> None:
    engine = open_database(fresh_database(postgres_url))
    try:
        assert_writer_stores_what_sqlalchemy_stores(engine)
    finally:
        engine.dispose()


def test_migrations_and_ledger_on_postgres(pg_gateway: GatewayThread) -> None:
    key = pg_gateway.create_key(team="pg")
    client = openai.OpenAI(base_url=pg_gateway.url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    list(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    with pg_gateway.service.store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM ledger ORDER BY created_at"))]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["cost_usd"] == rows[1]["cost_usd"] == Decimal("0.0000028000")
    grouped = pg_gateway.admin("GET", "/admin/usage?group_by=team,day").json()["data"]
    assert grouped[0]["team"] == "pg"
    assert grouped[0]["requests"] == 2


async def test_wallet_concurrency_on_postgres(pg_gateway: GatewayThread, upstream: FakeUpstream) -> None:
    upstream.latency = 0.05
    key = pg_gateway.create_key(team="tight")
    pg_gateway.admin("POST", "/admin/teams/tight/wallet", json={"amount_usd": "0.0001"})
    client = openai.AsyncOpenAI(base_url=pg_gateway.url + "/v1", api_key=key, max_retries=0)

    async def one() -> int:
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=64
            )
            return 200
        except openai.APIStatusError as error:
            return error.status_code

    statuses = await asyncio.gather(*(one() for _ in range(200)))
    await client.close()
    assert set(statuses) == {200, 402}
    with pg_gateway.service.store.engine.connect() as conn:
        spent, reserved = conn.execute(
            sa.text("SELECT COALESCE(SUM(cost_usd), 0), MAX(reserved_usd) FROM ledger WHERE team = 'tight'")
        ).one()
        balance = conn.execute(sa.text("SELECT balance_usd FROM wallets WHERE team = 'tight'")).scalar_one()
    assert spent <= Decimal("0.0001") + reserved
    assert balance == Decimal("0.0001") - spent


def test_admin_and_usage_on_postgres(pg_gateway: GatewayThread) -> None:
    key = pg_gateway.create_key(team="a")
    httpx.post(
        pg_gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert pg_gateway.admin("DELETE", f"/admin/keys/{key.split('-')[1]}").status_code == 200
    csv_text = pg_gateway.admin("GET", "/admin/usage?group_by=key,model&format=csv").text
    assert csv_text.splitlines()[0].startswith("key,model,requests")
