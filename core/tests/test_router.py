"""The scheduler against real local servers: failover, breakers, cool-downs, policies, constraints, tasks,
affinity and explanations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from acme_provider import plugin as acme_plugin

from modelbus import AsyncClient, Client
from modelbus.errors import (
    APIConnectionError,
    BadRequestError,
    ConfigError,
    NoRouteError,
    OverloadedError,
)
from modelbus.testing import FakeUpstream, openai_chat_responder

from .conftest import KEY


@pytest.fixture
def backup() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.respond_with(openai_chat_responder("Hello from the backup."))
        yield server


def router_client(
    upstream: FakeUpstream, backup: FakeUpstream, *, plugins: tuple[object, ...] = (), **router: Any
) -> Client:
    models = router.pop("models", None) or {
        "router/chat": {
            "policy": "fallback",
            "affinity": False,
            "candidates": ["acme/acme-chat", "acme-backup"],
        },
    }
    config = {
        "router": {
            "deployments": {
                "acme-backup": {
                    "provider": "acme",
                    "model": "acme-chat",
                    "settings": {"base_url": backup.url},
                }
            },
            "models": models,
            "breaker": {"failures": 3, "window": 30, "cooldown": 0.5},
            **router,
        },
    }
    return Client(
        plugins=[acme_plugin, *plugins],
        load_entrypoints=False,
        config=config,
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": upstream.url}},
    )


def test_fails_over_to_the_next_candidate_and_explains(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(upstream, backup)
    upstream.fail(503)
    response = client.chat("router/chat", "hi")
    assert response.text == "Hello from the backup."
    route = response.route
    assert route is not None
    assert route.policy == "fallback"
    assert route.resolved == "acme-backup"
    assert [(a.deployment, a.outcome, a.error_type) for a in route.attempts] == [
        ("acme/acme-chat", "error", "OverloadedError"),
        ("acme-backup", "ok", None),
    ]
    assert [c.deployment for c in route.candidates] == ["acme/acme-chat", "acme-backup"]


def test_a_5xx_storm_opens_the_breaker_then_half_open_recovers(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    client = router_client(upstream, backup)
    upstream.fail(500, times=3)
    for _ in range(3):
        assert client.chat("router/chat", "hi").text == "Hello from the backup."
    served = len(upstream.requests)
    route = client.chat("router/chat", "hi").route
    assert route is not None
    assert len(upstream.requests) == served  # the primary is skipped while its circuit is open
    primary = next(c for c in route.candidates if c.deployment == "acme/acme-chat")
    assert primary.excluded is not None
    assert "circuit open" in primary.excluded
    time.sleep(0.6)  # cooldown: half-open lets one trial through, which succeeds and closes it
    assert client.chat("router/chat", "hi").text == "Hello from acme."
    assert client.runtime.router.health.get("acme/acme-chat").state == "closed"


def test_a_429_with_retry_after_cools_that_deployment_down(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    client = router_client(upstream, backup)
    upstream.fail(429, retry_after=30)
    assert client.chat("router/chat", "hi").text == "Hello from the backup."
    route = client.chat("router/chat", "hi").route
    assert route is not None
    reason = next(c.excluded for c in route.candidates if c.deployment == "acme/acme-chat")
    assert reason is not None
    assert "cooling down after a 429" in reason


def test_timeouts_fail_over_within_one_deadline(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(upstream, backup)
    client.runtime.config.client.timeout.read = 0.3
    upstream.hang(2)
    start = time.monotonic()
    response = client.chat("router/chat", "hi", timeout=5)
    assert response.text == "Hello from the backup."
    assert time.monotonic() - start < 2
    assert response.route is not None
    assert response.route.attempts[0].error_type == "RequestTimeoutError"


def test_a_stream_fails_over_only_before_its_first_token(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    client = router_client(upstream, backup)
    upstream.disconnect(after_events=1)  # only the role chunk got out: fail over, invisibly
    stream = client.chat("router/chat", "hi", stream=True)
    assert "".join(chunk.text for chunk in stream) == "Hello from the backup."
    assert stream.route is not None
    assert [a.outcome for a in stream.route.attempts] == ["error", "ok"]
    upstream.disconnect(after_events=3)  # tokens reached the caller: the stream ends with the error
    with pytest.raises(APIConnectionError):
        list(client.chat("router/chat", "hi", stream=True))


async def test_async_client_routes_too(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    sync = router_client(upstream, backup)
    client = AsyncClient(runtime=sync.runtime, max_retries=0)
    upstream.fail(503)
    response = await client.chat("router/chat", "hi")
    assert response.text == "Hello from the backup."
    await client.aclose()


def test_non_retryable_errors_do_not_fail_over(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(upstream, backup)
    upstream.fail(400, body={"error": {"message": "bad"}})
    with pytest.raises(BadRequestError):
        client.chat("router/chat", "hi")
    assert not backup.requests


def test_cheapest_policy_and_constraints_with_reasons(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(
        upstream,
        backup,
        models={
            "router/cheap": {
                "policy": "cheapest",
                "candidates": ["acme/acme-chat", "acme/acme-mini", "acme/acme-cny"],
            },
            "router/smart": {
                "policy": "cheapest_above_tier",
                "min_quality_tier": 2,
                "candidates": ["acme/acme-chat", "acme/acme-mini", "acme/acme-cny"],
            },
        },
    )
    route = client.chat("router/cheap", "hi").route
    assert route is not None
    assert route.resolved == "acme/acme-mini"
    scores = {c.deployment: c.score for c in route.candidates}
    assert scores["acme/acme-mini"] < scores["acme/acme-cny"] < scores["acme/acme-chat"]  # type: ignore[operator]
    route = client.chat("router/smart", "hi").route
    assert route is not None
    assert route.resolved == "acme/acme-cny"
    excluded = {c.deployment: c.excluded for c in route.candidates}
    assert excluded["acme/acme-mini"] == "quality tier 1 < 2"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    route = client.chat("router/cheap", "hi", tools=[tool]).route  # the request needs tools
    assert route is not None
    assert route.resolved == "acme/acme-cny"
    assert dict((c.deployment, c.excluded) for c in route.candidates)["acme/acme-mini"] == "lacks tools"


def test_request_constraints_from_metadata(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(
        upstream,
        backup,
        models={
            "router/any": {
                "policy": "cheapest",
                "candidates": ["acme/acme-chat", "acme/acme-mini", "acme/acme-cny"],
            },
        },
    )
    route = client.chat(
        "router/any", "hi", metadata={"max_output_price": "1.5", "min_quality_tier": "2"}
    ).route
    assert route is not None
    assert route.resolved == "acme/acme-cny"
    excluded = {c.deployment: c.excluded for c in route.candidates}
    assert excluded["acme/acme-chat"].startswith("output $10")  # type: ignore[union-attr]
    with pytest.raises(NoRouteError) as error:
        client.chat("router/any", "hi", metadata={"regions_allow": "CN"})
    assert "region US not allowed" in str(error.value)
    with pytest.raises(BadRequestError, match="min_quality_tier"):
        client.chat("router/any", "hi", metadata={"min_quality_tier": "eleven"})
    big = "word " * 40_000  # ~50k tokens: only the 128k-context model fits
    route = client.chat("router/any", big).route
    assert route is not None
    assert route.resolved == "acme/acme-chat"
    assert "context window 8192" in {c.deployment: c.excluded for c in route.candidates}["acme/acme-mini"]  # type: ignore[operator]


def test_task_aware_routing(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = router_client(
        upstream,
        backup,
        models={
            "router/auto": {
                "policy": "cheapest",
                "candidates": ["acme/acme-mini", "acme/acme-chat"],
                "tasks": {"code": "router/code"},
            },
            "router/code": {"policy": "fallback", "candidates": ["acme/acme-chat"]},
        },
    )
    assert client.chat("router/auto", "hello there").route.resolved == "acme/acme-mini"  # type: ignore[union-attr]
    route = client.chat("router/auto", "Fix this python function for me").route  # the heuristic: code
    assert route is not None
    assert route.task == "code"
    assert route.resolved == "acme/acme-chat"
    assert "task code -> router/code" in route.reason
    route = client.chat("router/auto", "hello", metadata={"task": "code"}).route  # explicit task wins
    assert route is not None
    assert route.resolved == "acme/acme-chat"


def test_weighted_is_reproducible_with_a_seed(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    models = {
        "router/w": {
            "policy": "weighted",
            "affinity": False,
            "candidates": ["acme/acme-chat", "acme-backup"],
            "weights": {"acme/acme-chat": 3, "acme-backup": 1},
        }
    }
    first = [router_client(upstream, backup, models=models, seed=7).runtime.router for _ in range(2)]
    from modelbus.types import ChatRequest

    request = ChatRequest(model="router/w", messages=[{"role": "user", "content": "hi"}])
    picks = [[router.plan(request).route.resolved for _ in range(40)] for router in first]
    assert picks[0] == picks[1]
    assert 15 < picks[0].count("acme/acme-chat") < 40  # roughly 3:1


def test_cache_affinity_keeps_a_conversation_on_its_deployment(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    models = {
        "router/w": {
            "policy": "weighted",
            "candidates": ["acme/acme-chat", "acme-backup"],
            "weights": {"acme/acme-chat": 1, "acme-backup": 1},
        }
    }
    client = router_client(upstream, backup, models=models, seed=1)
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me a story."},
    ]
    first = client.chat("router/w", history).route.resolved  # type: ignore[union-attr]
    for turn in range(8):
        history += [{"role": "assistant", "content": f"part {turn}"}, {"role": "user", "content": "go on"}]
        route = client.chat("router/w", history).route
        assert route is not None
        assert route.resolved == first
        if route.reason.count("affinity"):
            assert first in route.reason
    session = {"session_id": "abc"}
    served = client.chat("router/w", "a", metadata=session).route.resolved  # type: ignore[union-attr]
    assert all(
        client.chat("router/w", f"b{i}", metadata=session).route.resolved == served  # type: ignore[union-attr]
        for i in range(6)
    )


def test_fastest_and_least_inflight(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    models = {
        "router/fast": {
            "policy": "fastest",
            "affinity": False,
            "candidates": ["acme/acme-chat", "acme-backup"],
        }
    }
    client = router_client(upstream, backup, models=models)
    upstream.latency = 0.15
    for _ in range(4):  # both get measured; then the fast one wins
        client.chat("router/fast", "hi")
    routes = [client.chat("router/fast", "hi").route for _ in range(3)]
    assert all(r is not None and r.resolved == "acme-backup" for r in routes)
    router = client.runtime.router
    health = router.health
    health.started("acme-backup")
    health.started("acme-backup")
    from modelbus.types import ChatRequest

    models2 = {"router/lif": {"policy": "least_inflight", "candidates": ["acme-backup", "acme/acme-chat"]}}
    other = router_client(upstream, backup, models=models2).runtime.router
    other.health.started("acme-backup")
    plan = other.plan(ChatRequest(model="router/lif", messages=[{"role": "user", "content": "x"}]))
    assert plan.route.resolved == "acme/acme-chat"


def test_missing_keys_and_bad_config_are_reported(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    client = Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        max_retries=0,
        config={"router": {"models": {"router/x": {"candidates": ["acme/acme-chat"]}}}},
    )
    with pytest.raises(NoRouteError, match="no API key configured"):
        client.chat("router/x", "hi")
    with pytest.raises(ConfigError, match="router/<name>"):
        Client(
            plugins=[acme_plugin],
            load_entrypoints=False,
            config={"router": {"models": {"cheap": {"candidates": ["acme/acme-chat"]}}}},
        ).chat("cheap", "hi")
    with pytest.raises(ConfigError, match="needs a weight"):
        Client(
            plugins=[acme_plugin],
            load_entrypoints=False,
            config={
                "router": {"models": {"router/w": {"policy": "weighted", "candidates": ["acme/acme-chat"]}}}
            },
        ).chat("router/w", "x")


def test_when_every_candidate_is_unhealthy_one_is_still_tried(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    client = router_client(upstream, backup)
    router = client.runtime.router
    from modelbus.errors import OverloadedError as Overloaded

    for name in ("acme/acme-chat", "acme-backup"):
        for _ in range(3):
            router.health.started(name)
            router.health.record(name, error=Overloaded("x"), latency=0.1)
    response = client.chat("router/chat", "hi")
    route = response.route
    assert route is not None
    assert "no healthy candidate" in route.reason
    assert "circuit open" in route.reason  # the health of what was tried is said in the reason...
    assert [c.excluded for c in route.candidates] == [None, None]  # ...not as an exclusion
    assert response.text in {"Hello from acme.", "Hello from the backup."}
    assert OverloadedError


def test_cost_policies_stick_only_when_the_cache_pays(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    """A conversation served by a dear deployment stays there only if its cached prefix makes it no dearer."""
    from modelbus.types import ChatRequest

    client = router_client(
        upstream,
        backup,
        models={"router/cheap": {"policy": "cheapest", "candidates": ["acme/acme-chat", "acme/acme-mini"]}},
    )
    router = client.runtime.router
    head = {"role": "user", "content": "abcd" * 50}

    def turn(history_tokens: int) -> ChatRequest:
        return ChatRequest(
            model="router/cheap",
            messages=[
                head,
                {"role": "assistant", "content": "abcd" * history_tokens},
                {"role": "user", "content": "more"},
            ],
        )

    key = router._affinity_key(turn(10), "")
    router.affinity[key] = ("acme/acme-chat", router.clock() + 60)
    # acme-chat costs ~16x acme-mini; a 90% discount on a short history cannot pay for that
    assert router.plan(turn(10)).route.resolved == "acme/acme-mini"
    weighted = router_client(
        upstream,
        backup,
        models={
            "router/w": {
                "policy": "weighted",
                "candidates": ["acme/acme-chat", "acme/acme-mini"],
                "weights": {"acme/acme-chat": 1, "acme/acme-mini": 1000},
            }
        },
    ).runtime.router
    request = turn(10).model_copy(update={"model": "router/w"})
    weighted.affinity[weighted._affinity_key(request, "")] = ("acme/acme-chat", weighted.clock() + 60)
    plan = weighted.plan(request)  # cost-blind policies always keep the conversation where it was
    assert plan.route.resolved == "acme/acme-chat"
    assert "affinity" in plan.route.reason


def test_no_route_carries_its_explanation_and_reaches_the_after_call_hooks(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    from modelbus.hookspecs import hookimpl

    seen: list[Any] = []

    class Observer:
        @hookimpl
        def modelbus_after_call(self, request: Any, response: Any, error: Any, context: Any) -> None:
            seen.append(error)

    client = router_client(upstream, backup, plugins=(Observer(),))
    with pytest.raises(NoRouteError) as caught:
        client.chat("router/chat", "hi", metadata={"providers_deny": "acme"})
    route = caught.value.route
    assert route is not None
    assert route.resolved is None
    assert route.attempts == []
    assert [c.excluded for c in route.candidates] == ["provider acme is denied"] * 2
    assert "chose=-" in route.summary()
    assert seen == [caught.value]
    assert not upstream.requests


def test_a_deadline_that_runs_out_between_attempts_keeps_the_route(
    upstream: FakeUpstream, backup: FakeUpstream
) -> None:
    from modelbus.errors import RequestTimeoutError
    from modelbus.retries import Deadline, RetryPolicy
    from modelbus.routing import AttemptLoop
    from modelbus.types import ChatRequest

    router = router_client(upstream, backup).runtime.router
    plan = router.plan(ChatRequest(model="router/chat", messages=[{"role": "user", "content": "hi"}]))
    loop = AttemptLoop(plan, RetryPolicy(max_retries=0), Deadline(30))
    loop.begin()
    assert loop.failed(OverloadedError("busy")) == 0.0  # fail over to the backup...
    loop.deadline = Deadline(0)  # ...but the call's time is up
    with pytest.raises(RequestTimeoutError) as caught:
        loop.begin()
    assert caught.value.route is plan.route
    assert [a.deployment for a in plan.route.attempts] == ["acme/acme-chat"]


def test_the_affinity_table_is_bounded_and_pruned(upstream: FakeUpstream, backup: FakeUpstream) -> None:
    router = router_client(upstream, backup, affinity_ttl=10, affinity_max_entries=3).runtime.router
    now = [1000.0]
    router.clock = lambda: now[0]
    for i in range(5):
        router.remember(f"conversation-{i}", "acme/acme-chat")
    assert list(router.affinity) == ["conversation-2", "conversation-3", "conversation-4"]
    router.remember("conversation-3", "acme-backup")  # a write refreshes: it is now the newest
    assert list(router.affinity) == ["conversation-2", "conversation-4", "conversation-3"]
    now[0] += 11  # every entry has expired: the next write clears them out
    router.remember("conversation-5", "acme/acme-chat")
    assert list(router.affinity) == ["conversation-5"]


def test_probes_count_failures_let_an_open_circuit_half_open_and_leave_latency_alone() -> None:
    from modelbus.router.config import BreakerConfig
    from modelbus.router.health import HealthBook

    book = HealthBook(BreakerConfig(failures=2, window=30, cooldown=60))
    book.record_probe("d", error=OverloadedError("down"))
    book.record_probe("d", error=OverloadedError("down"))
    assert book.get("d").state == "open"
    assert book.unavailable("d") is not None
    book.record_probe("d", error=None)  # the provider answers its probe again
    health = book.get("d")
    assert health.state == "half_open"
    assert book.unavailable("d") is None  # one real request may now decide
    assert (health.ewma_latency, health.successes) == (None, 0)
    book.record_probe("d", error=OverloadedError("down again"))
    assert book.get("d").state == "open"


def test_json_modes_need_their_capability() -> None:
    from modelbus.router.router import needed_capabilities
    from modelbus.types import ChatRequest

    messages = [{"role": "user", "content": "hi"}]
    for kind in ("json_object", "json_schema"):
        format_ = {"type": kind}
        if kind == "json_schema":
            format_["json_schema"] = {"name": "x", "schema": {"type": "object"}}
        request = ChatRequest.from_openai({"model": "m", "messages": messages, "response_format": format_})
        assert kind in needed_capabilities(request)
