"""Properties of the scheduler over random model tables, constraints and requests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelbus import Client
from modelbus.errors import NoRouteError
from modelbus.pricing import usd_per_million
from modelbus.providers import OpenAICompatibleProvider
from modelbus.router.router import needed_capabilities
from modelbus.tokens import estimate_prompt_tokens
from modelbus.types import ChatRequest, ModelInfo, ModelPrice

CAPS = ["streaming", "tools", "vision", "json_schema", "json_object", "reasoning"]
REGIONS = {"cn": ("https://cn.example.test", "CN"), "us": ("https://us.example.test", "US")}


def make_plugin(name: str, models: list[dict[str, Any]]) -> OpenAICompatibleProvider:
    rows = [
        ModelInfo(
            provider=name,
            id=row["id"],
            context_window=row["context"],
            quality_tier=row["tier"],
            capabilities=frozenset(row["caps"]) | {"streaming"},
            price=ModelPrice(
                currency=row["currency"],
                input=row["input"],
                output=row["output"],
                as_of=date(2026, 11, 1),
                source="https://example.test/pricing",
            ),
        )
        for row in models
    ]

    class Random(OpenAICompatibleProvider):
        display_name = name
        regions = REGIONS
        default_region = "cn" if name.endswith("0") else "us"
        models_file = None

        def model_table(self) -> list[ModelInfo]:
            return rows

    Random.name = name
    return Random()


model_rows = st.lists(
    st.fixed_dictionaries(
        {
            "context": st.sampled_from([4096, 32_000, 128_000]),
            "tier": st.integers(1, 5),
            "caps": st.lists(st.sampled_from(CAPS), unique=True),
            "currency": st.sampled_from(["USD", "CNY"]),
            "input": st.decimals(min_value=0, max_value=20, places=2),
            "output": st.decimals(min_value=0, max_value=60, places=2),
        }
    ),
    min_size=1,
    max_size=4,
)
constraints = st.fixed_dictionaries(
    {},
    optional={
        "min_quality_tier": st.integers(1, 5),
        "max_input_price": st.decimals(min_value=0, max_value=10, places=2),
        "max_output_price": st.decimals(min_value=0, max_value=30, places=2),
        "require": st.lists(st.sampled_from(CAPS), unique=True, max_size=2),
        "providers_deny": st.lists(st.sampled_from(["p0", "p1"]), unique=True, max_size=1),
        "regions_allow": st.lists(st.sampled_from(["CN", "US"]), unique=True, min_size=1, max_size=2),
    },
)
policies = st.sampled_from(["fallback", "cheapest", "fastest", "least_inflight", "weighted"])
requests = st.fixed_dictionaries(
    {
        "text": st.text(min_size=1, max_size=200),
        "tools": st.booleans(),
        "stream": st.booleans(),
        "max_tokens": st.none() | st.integers(1, 40_000),
    }
)


def build(tables: list[list[dict[str, Any]]], policy: str, limits: dict[str, Any], seed: int) -> Client:
    plugins = []
    candidates = []
    for p, rows in enumerate(tables):
        for i, row in enumerate(rows):
            row["id"] = f"m{i}"
            candidates.append(f"p{p}/m{i}")
        plugins.append(make_plugin(f"p{p}", rows))
    virtual: dict[str, Any] = {
        "policy": policy,
        "candidates": candidates,
        "affinity": False,
        "max_attempts": 10,
        **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in limits.items()},
    }
    if policy == "weighted":
        virtual["weights"] = {c: 1 + i for i, c in enumerate(candidates)}
    return Client(
        plugins=plugins,
        load_entrypoints=False,
        max_retries=0,
        providers={f"p{p}": {"api_key": "k"} for p in range(len(tables))},
        config={"router": {"seed": seed, "models": {"router/r": virtual}}},
    )


def chat_request(spec: dict[str, Any]) -> ChatRequest:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    return ChatRequest(
        model="router/r",
        messages=[{"role": "user", "content": spec["text"]}],
        tools=[tool] if spec["tools"] else None,
        stream=spec["stream"],
        max_tokens=spec["max_tokens"],
    )


def allowed(client: Client, deployment: Any, request: ChatRequest, limits: dict[str, Any]) -> bool:
    """The constraints, checked independently of the router's code."""
    model = deployment.model
    needed = needed_capabilities(request) | set(limits.get("require", []))
    price_in, price_out = usd_per_million(model.price, client.runtime.fx_rates)
    return (
        needed <= set(model.capabilities)
        and model.quality_tier >= limits.get("min_quality_tier", 1)
        and price_in <= limits.get("max_input_price", Decimal("Infinity"))
        and price_out <= limits.get("max_output_price", Decimal("Infinity"))
        and deployment.provider_name not in limits.get("providers_deny", [])
        and deployment.jurisdiction in limits.get("regions_allow", ["CN", "US"])
        and estimate_prompt_tokens(request) + (request.max_tokens or 0) <= model.context_window
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables=st.lists(model_rows, min_size=1, max_size=2),
    policy=policies,
    limits=constraints,
    spec=requests,
    seed=st.integers(0, 1000),
)
def test_a_route_never_violates_a_constraint(tables, policy, limits, spec, seed) -> None:
    client = build(tables, policy, limits, seed)
    router = client.runtime.router
    request = chat_request(spec)
    every = [router.deployment(name) for name in router.config.models["router/r"].candidates]
    expected = {d.id for d in every if allowed(client, d, request, limits)}
    try:
        plan = router.plan(request)
    except NoRouteError:
        assert expected == set(), "the router refused although a candidate satisfies every constraint"
        return
    chosen = [d.id for d in plan.candidates]
    assert set(chosen) == expected  # nothing that violates a constraint, nothing eligible dropped
    for candidate in plan.route.candidates:  # and every exclusion says why
        assert (candidate.excluded is None) == (candidate.deployment in expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables=st.lists(model_rows, min_size=1, max_size=2),
    policy=policies,
    specs=st.lists(requests, min_size=1, max_size=8),
    seed=st.integers(0, 1000),
)
def test_a_seeded_router_is_deterministic(tables, policy, specs, seed) -> None:
    def routes() -> list[list[str]]:
        router = build([[dict(row) for row in rows] for rows in tables], policy, {}, seed).runtime.router
        out = []
        for spec in specs:
            try:
                out.append([d.id for d in router.plan(chat_request(spec)).candidates])
            except NoRouteError as error:
                out.append([str(error)])
        return out

    assert routes() == routes()
