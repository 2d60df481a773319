"""Operations: logs without secrets, OpenTelemetry spans, disconnects, graceful shutdown, kill -9."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
from harness import MASTER, UPSTREAM_KEY, GatewayProcess, GatewayThread, provider_config

from modelbus.gateway.logs import JSONFormatter
from modelbus.testing import FakeUpstream, ResponseSpec, SSEItem

MODEL = "deepseek/deepseek-chat"
SECRET_PROMPT = "my password is hunter2-very-secret"


def rows(database_url: str) -> list[dict]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM ledger"))]
    finally:
        engine.dispose()


def test_logs_are_json_with_request_ids_and_never_keys_or_prompts(
    gateway: GatewayThread, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = gateway.create_key(team="t")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}])
    upstream.fail(
        401, body={"error": {"message": "Incorrect API key provided: sk-upstream-provider-key-abcdef123456"}}
    )
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}])
    lines = [JSONFormatter().format(record) for record in caplog.records]
    text = "\n".join(lines)
    access = [json.loads(line) for line in lines if '"request finished"' in line]
    assert len(access) == 2
    assert all(entry["request_id"].startswith("mb-") for entry in access)
    assert access[0]["status"] == "ok"
    assert access[1]["error_type"] == "AuthenticationError"
    for secret in (
        key,
        key.split("-", 2)[2],
        MASTER,
        "sk-upstream-provider-key-abcdef123456",
        SECRET_PROMPT,
        "hunter2",
    ):
        assert secret not in text, f"{secret!r} leaked into the logs"


def test_json_log_lines_keep_every_field_whatever_its_type() -> None:
    record = logging.LogRecord(
        "modelbus.gateway.access", logging.INFO, __file__, 1, "request finished", (), None
    )
    record.fields = {  # type: ignore[attr-defined]
        "model": "qwen/qwen-max-中文",
        "cost_usd": Decimal("0.0000123"),
        "tokens": 2**70,  # past 64 bits: orjson refuses it, the standard library writes it
        "ttft_ms": None,
    }
    entry = json.loads(JSONFormatter().format(record))
    assert entry["message"] == "request finished"
    assert entry["model"] == "qwen/qwen-max-中文"
    assert entry["cost_usd"] == "0.0000123"
    assert entry["tokens"] == 2**70
    assert entry["ttft_ms"] is None


def test_prompt_logging_is_opt_in_per_key(gateway: GatewayThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key = gateway.create_key(log_content=True)
    openai.OpenAI(base_url=gateway.url + "/v1", api_key=key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "log me please"}]
    )
    entry = next(r for r in caplog.records if r.getMessage() == "request finished")
    assert entry.fields["prompt"] == "log me please"  # type: ignore[attr-defined]
    assert entry.fields["completion"] == "Hello from the upstream."  # type: ignore[attr-defined]


def test_opentelemetry_spans_follow_genai_conventions(upstream: FakeUpstream, tmp_path: Path) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = GatewayThread(
        provider_config(upstream), database_url=f"sqlite:///{tmp_path / 'o.db'}", otel=True
    ).start()
    try:
        key = gateway.create_key()
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=20
        )
    finally:
        gateway.stop()
    span = next(s for s in exporter.get_finished_spans() if s.name == f"chat {MODEL}")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.provider.name"] == "deepseek"
    assert attributes["gen_ai.usage.input_tokens"] == 10
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["gen_ai.request.max_tokens"] == 20
    assert SECRET_PROMPT not in json.dumps({k: str(v) for k, v in attributes.items()})


def _slow_stream(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            event_delay=0.05,
            sse=[
                SSEItem(
                    data={
                        "id": "x",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "deepseek-chat",
                        "choices": [{"index": 0, "delta": {"content": f"word{n} "}}],
                    }
                )
                for n in range(200)
            ]
            + [SSEItem(data="[DONE]")],
        ),
        stream=True,
    )


def test_client_disconnect_cancels_upstream_and_still_records_usage(
    gateway: GatewayThread, upstream: FakeUpstream
) -> None:
    _slow_stream(upstream)
    key = gateway.create_key()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "go"}]},
    ) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        upstream.client_disconnects
        and rows(gateway.settings.database_url)
        and rows(gateway.settings.database_url)[0]["status"] != "pending"
    ):
        time.sleep(0.05)
    assert upstream.client_disconnects == 1, "the upstream stream was not closed"
    row = rows(gateway.settings.database_url)[0]
    assert row["status"] == "cancelled"
    assert row["completion_tokens"] > 0
    assert row["usage_estimated"]
    assert Decimal(str(row["cost_usd"])) > 0
    assert gateway.service.state.reserved_total() == 0


def test_non_stream_disconnect_is_recorded(gateway: GatewayThread, upstream: FakeUpstream) -> None:
    upstream.hang(3)
    key = gateway.create_key()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "go"}]},
            timeout=0.5,
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = rows(gateway.settings.database_url)
        if found and found[0]["status"] != "pending":
            break
        time.sleep(0.05)
    assert found[0]["status"] == "cancelled"
    assert found[0]["latency_ms"] < 2500  # cancelled when the caller left, not when the upstream answered


def _process_config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[providers.deepseek]\napi_key = "{UPSTREAM_KEY}"\nbase_url = "{upstream.url}"\n'
        f'[gateway]\ndatabase_url = "sqlite:///{tmp_path / "gw.db"}"\nshutdown_grace_seconds = 20\n'
    )
    return config


def test_graceful_shutdown_drains_in_flight_requests(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.latency = 1.5
    server = GatewayProcess(_process_config(tmp_path, upstream)).start()
    key = httpx.post(
        server.url + "/admin/keys", headers={"Authorization": f"Bearer {MASTER}"}, json={}
    ).json()["key"]
    result: dict[str, object] = {}

    def call() -> None:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        result["status"] = response.status_code
        result["body"] = response.json()

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)  # the request is in flight upstream
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    # uvicorn re-raises SIGTERM once it has shut down gracefully, so the exit status says "terminated"
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert result["status"] == 200
    row = rows(f"sqlite:///{tmp_path / 'gw.db'}")[0]
    assert row["status"] == "ok"
    # apart from its start-up banner (stdout), every line `modelbus serve` wrote is a JSON log line;
    # the request's access line names its id
    output = server.log.read_text()
    banners = [line for line in output.splitlines() if not line.startswith("{")]
    assert len(banners) == 1
    assert banners[0].startswith("modelbus gateway on http://")
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [entry for entry in entries if entry["message"] == "request finished"]
    assert [entry["request_id"] for entry in access] == [row["request_id"]]
    assert key not in output


def test_kill_9_under_load_loses_no_settled_row_and_leaves_nothing_reserved(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.latency = 0.02
    database = f"sqlite:///{tmp_path / 'gw.db'}"
    server = GatewayProcess(_process_config(tmp_path, upstream)).start()
    admin = {"Authorization": f"Bearer {MASTER}"}
    key = httpx.post(server.url + "/admin/keys", headers=admin, json={"team": "load"}).json()["key"]
    httpx.post(server.url + "/admin/teams/load/wallet", headers=admin, json={"amount_usd": "5"})
    completed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(stream: bool) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    if stream:
                        with http.stream(
                            "POST",
                            server.url + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {key}"},
                            json={
                                "model": MODEL,
                                "stream": True,
                                "messages": [{"role": "user", "content": "hi"}],
                            },
                        ) as r:
                            lines = [line for line in r.iter_lines() if line]
                            if r.status_code == 200 and lines and lines[-1] == "data: [DONE]":
                                with lock:
                                    completed.append(r.headers["x-modelbus-request-id"])
                    else:
                        r = http.post(
                            server.url + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {key}"},
                            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                        )
                        if r.status_code == 200 and r.json()["choices"]:
                            with lock:
                                completed.append(r.headers["x-modelbus-request-id"])
                except (httpx.HTTPError, json.JSONDecodeError, KeyError):
                    return  # the server died under us

    threads = [threading.Thread(target=worker, args=(n % 2 == 0,)) for n in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    server.kill()  # SIGKILL: no shutdown hooks run
    stop.set()
    for thread in threads:
        thread.join(15)
    assert len(completed) > 20, "the load did not get going"

    ledger = {row["request_id"]: row for row in rows(database)}
    missing = [rid for rid in completed if rid not in ledger or ledger[rid]["status"] != "ok"]
    assert not missing, f"{len(missing)} completed requests have no settled ledger row"
    pending_before = sum(1 for row in ledger.values() if row["status"] == "pending")

    restarted = GatewayProcess(_process_config(tmp_path, upstream)).start()  # reconciles at start-up
    try:
        after = {row["request_id"]: row for row in rows(database)}
        assert not [row for row in after.values() if row["status"] == "pending"]
        assert sum(1 for row in after.values() if row["status"] == "interrupted") == pending_before
        wallet = httpx.get(restarted.url + "/admin/wallets", headers=admin).json()["data"][0]
        billed = sum(Decimal(str(row["cost_usd"])) for row in after.values())
        assert Decimal(wallet["balance_usd"]) == Decimal(5) - billed  # every debit has exactly one row
        assert Decimal(wallet["available_usd"]) == Decimal(wallet["balance_usd"])  # no reservation stuck
    finally:
        restarted.terminate()
    log = (tmp_path / "config.log").read_text()
    for secret in (key, MASTER, "sk-upstream-provider-key-abcdef123456"):
        assert secret not in log


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("mysql://ops:s3cret-db-pass@db.internal/ledger", "must be sqlite:///<path> or postgresql"),
        ("postgresql+psycopg://ops:s3cret-db-pass@127.0.0.1:1/ledger", "cannot open the ledger database"),
        ("sqlite:///{tmp}/a-file/ledger.db", "cannot open the ledger database"),
    ],
)
def test_serve_with_a_bad_database_url_fails_in_one_line_without_the_password(
    database_url: str, expected: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    config = tmp_path / "modelbus.toml"
    config.write_text("")
    (tmp_path / "a-file").write_text("a regular file where the ledger's directory should be")
    database_url = database_url.replace("{tmp}", str(tmp_path))
    env = {**os.environ, "MODELBUS_MASTER_KEY": MASTER, "MODELBUS_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "modelbus", "serve", "--port", "0", "--database-url", database_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert expected in output
    assert "Traceback" not in output
    assert "s3cret-db-pass" not in output


def test_middleware_added_to_the_app_wraps_the_hot_paths_too(upstream: FakeUpstream, tmp_path: Path) -> None:
    from starlette.middleware.cors import CORSMiddleware

    gateway = GatewayThread(provider_config(upstream), database_url=f"sqlite:///{tmp_path / 'm.db'}")
    gateway.app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    assert gateway.app.routes[0].path == "/v1/chat/completions"  # the rest of Starlette's API is there
    gateway.start()
    try:
        key = gateway.create_key()
        origin = {"Origin": "https://app.example"}
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        for method, path, body in (("POST", "/v1/chat/completions", chat), ("GET", "/health/live", None)):
            response = httpx.request(
                method, gateway.url + path, json=body, headers={"Authorization": f"Bearer {key}", **origin}
            )
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == "https://app.example", path
    finally:
        gateway.stop()
