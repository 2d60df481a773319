"""The scheduler: for one request to a virtual model, which deployments to try, in what order, and why.

    plan = router.plan(request, scope=key_id)   # -> RoutePlan (ordered candidates + RouteInfo)

1. The task (``metadata["task"]``, else the ``modelbus_classify_task`` hook) may redirect to another
   virtual model (``tasks = { code = "router/best-code" }``).
2. Constraints (the virtual model's, tightened by the request's metadata, plus what the request itself
   needs: tools, images, json_schema, a context window that fits) and health (open circuits, 429
   cool-downs, missing keys) exclude candidates, each with a stated reason.
3. The policy orders the rest: fallback (config order), cheapest (estimated cost of this request),
   fastest (EWMA latency, or TTFT for streams), weighted (seeded random), least in-flight,
   cheapest-above-a-quality-tier.
4. Cache affinity puts the deployment that served the same conversation first, while it is healthy.

Outcomes come back through the plan's listener: health (breaker, EWMA) and affinity are updated.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from modelbus.errors import BadRequestError, ModelbusError, NoRouteError
from modelbus.pricing import compute_cost, usd_per_million
from modelbus.router.config import Constraints, RouterConfig, VirtualModel
from modelbus.router.health import HealthBook
from modelbus.routing import RoutePlan
from modelbus.tokens import estimate_prompt_tokens
from modelbus.types.chat import ChatRequest, Usage
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.route import Candidate, RouteInfo

if TYPE_CHECKING:
    from modelbus.runtime import Deployment, Runtime
    from modelbus.types.models import ModelInfo

TYPICAL_OUTPUT_TOKENS = 256  # for cost estimates when max_tokens is not given
AFFINITY_PREFIX_CHARS = 4000


def request_constraints(request: ChatRequest | EmbeddingRequest) -> Constraints:
    """Constraints a request carries in its metadata (the gateway maps x-modelbus-* headers here)."""
    metadata = getattr(request, "metadata", None) or {}
    data: dict[str, Any] = {}
    for key in ("min_quality_tier", "max_input_price", "max_output_price"):
        if metadata.get(key):
            data[key] = metadata[key]
    for key in ("require", "providers_allow", "providers_deny", "regions_allow", "regions_deny"):
        if metadata.get(key):
            data[key] = [part.strip() for part in metadata[key].split(",") if part.strip()]
    if not data:
        return Constraints()
    try:
        return Constraints.model_validate(data)
    except ValueError as exc:
        raise BadRequestError(f"invalid routing constraint in metadata: {exc}", param="metadata") from None


def needed_capabilities(request: ChatRequest | EmbeddingRequest) -> set[str]:
    if not isinstance(request, ChatRequest):
        return set()
    needed = set()
    if request.tools:
        needed.add("tools")
    if request.uses_images():
        needed.add("vision")
    if request.response_format is not None and request.response_format.type in ("json_schema", "json_object"):
        needed.add(request.response_format.type)
    if request.stream:
        needed.add("streaming")
    return needed


class _PlanListener:
    """Feeds one plan's attempt outcomes back to the router."""

    def __init__(self, router: Router, affinity_key: str | None) -> None:
        self.router = router
        self.affinity_key = affinity_key

    def started(self, deployment: Deployment) -> None:
        self.router.health.started(deployment.id)

    def report(
        self, deployment: Deployment, *, error: ModelbusError | None, latency: float, ttft: float | None
    ) -> None:
        self.router.health.record(deployment.id, error=error, latency=latency, ttft=ttft)
        if error is None and self.affinity_key is not None:
            self.router.remember(self.affinity_key, deployment.id)


class Router:
    def __init__(
        self,
        config: RouterConfig,
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.monotonic,
        classify: Callable[[ChatRequest | EmbeddingRequest], str | None] | None = None,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.clock = clock
        self.health = HealthBook(config.breaker, config.ewma_alpha, clock)
        # conversation -> (deployment id, expiry), oldest write first: bounded and pruned as it is written
        self.affinity: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._rng = random.Random(config.seed)
        self._classify = classify
        self._deployments: dict[str, Deployment] = {}

    def handles(self, model: str) -> bool:
        return model in self.config.models

    def remember(self, affinity_key: str, deployment: str) -> None:
        """Stick a conversation to the deployment that served it, for ``affinity_ttl`` seconds.

        Every entry lives the same TTL, so the oldest write expires first: expired entries are dropped
        from the front as new ones come in, and past ``affinity_max_entries`` the oldest goes."""
        now = self.clock()
        table = self.affinity
        table[affinity_key] = (deployment, now + self.config.affinity_ttl)
        table.move_to_end(affinity_key)
        while table:
            oldest = next(iter(table.values()))
            if oldest[1] > now and len(table) <= self.config.affinity_max_entries:
                break
            table.popitem(last=False)

    # -- deployments ---------------------------------------------------------------------------

    def deployment(self, name: str, kind: str = "chat") -> Deployment:
        """The deployment a candidate names: an entry of [router.deployments], or a model id/alias."""
        found = self._deployments.get(name)
        if found is None:
            named = self.config.deployments.get(name)
            if named is not None:
                model = self.runtime.registry.resolve(f"{named.provider}/{named.model}", kind=kind)
                found = self.runtime.named_deployment(name, model, named.settings)
            else:
                found = self.runtime.deployment(self.runtime.registry.resolve(name, kind=kind))
            self._deployments[name] = found
        return found

    def candidate_models(self, virtual: str, kind: str = "chat") -> list[ModelInfo]:
        """Every model a virtual model may route to, through its task redirections too."""
        names = [virtual, *self.config.models[virtual].tasks.values()]
        models = []
        for name in names:
            for candidate in self.config.models[name].candidates:
                try:
                    models.append(self.deployment(candidate, kind).model)
                except ModelbusError:
                    continue
        if not models:
            raise NoRouteError(f"no candidate of {virtual} is available", param="model")
        return models

    async def probe(self, client: Any) -> None:
        """Run every deployment's health probe once and record the outcomes (active health checks)."""
        for deployment in self.deployments():
            status = await client.health(deployment.provider_name, deployment)
            if status.error is None and status.latency_ms is None:
                continue  # the provider has no health probe: nothing was learned
            self.health.record_probe(deployment.id, error=status.error)

    def deployments(self) -> list[Deployment]:
        """Every deployment any virtual model may use (for active probes)."""
        names = {name for model in self.config.models.values() for name in model.candidates}
        found = []
        for name in sorted(names):
            try:
                found.append(self.deployment(name))
            except ModelbusError:
                continue
        return found

    # -- planning ------------------------------------------------------------------------------

    def task_of(self, request: ChatRequest | EmbeddingRequest) -> str | None:
        metadata = getattr(request, "metadata", None) or {}
        if metadata.get("task"):
            return metadata["task"]
        if self._classify is not None:
            return self._classify(request)
        return self.runtime.hook.modelbus_classify_task(request=request)

    def plan(self, request: ChatRequest | EmbeddingRequest, *, scope: str = "") -> RoutePlan:
        requested = request.model
        name = requested
        virtual = self.config.models[name]
        task = self.task_of(request)
        reasons = []
        if task and task in virtual.tasks:
            name = virtual.tasks[task]
            virtual = self.config.models[name]
            reasons.append(f"task {task} -> {name}")
        constraints = virtual.tightened(request_constraints(request))
        needed = needed_capabilities(request) | set(constraints.require)
        kind = "embedding" if isinstance(request, EmbeddingRequest) else "chat"
        prompt_tokens = estimate_prompt_tokens(request) if isinstance(request, ChatRequest) else 0
        output_tokens = getattr(request, "max_tokens", None) or TYPICAL_OUTPUT_TOKENS

        candidates: list[Candidate] = []
        eligible: list[Deployment] = []
        unhealthy: list[Deployment] = []
        for candidate in virtual.candidates:
            try:
                deployment = self.deployment(candidate, kind)
            except ModelbusError as exc:
                candidates.append(Candidate(deployment=candidate, excluded=f"unavailable: {exc.message}"))
                continue
            reason = self._violation(deployment, constraints, needed, prompt_tokens, request)
            if reason is None:
                health = self.health.unavailable(deployment.id)
                if health is not None:
                    unhealthy.append(deployment)
                    reason = health
            candidates.append(Candidate(deployment=deployment.id, excluded=reason))
            if reason is None:
                eligible.append(deployment)
        if not eligible and unhealthy:
            # better to try a sick deployment than to refuse outright; its health goes into the reason
            eligible = unhealthy
            sick = {d.id for d in unhealthy}
            notes = [f"{c.deployment}: {c.excluded}" for c in candidates if c.deployment in sick]
            reasons.append(f"no healthy candidate, trying unhealthy ones ({'; '.join(notes)})")
            for candidate in candidates:
                if candidate.deployment in sick:
                    candidate.excluded = None
        if not eligible:
            detail = "; ".join(f"{c.deployment}: {c.excluded}" for c in candidates)
            error = NoRouteError(f"no candidate of {name} can serve this request ({detail})", param="model")
            error.route = RouteInfo(
                requested=requested,
                resolved=None,
                policy=virtual.policy,
                task=task,
                reason="; ".join([*reasons, "every candidate excluded"]),
                candidates=candidates,
            )
            raise error

        ordered, scores = self._order(
            virtual, eligible, prompt_tokens, output_tokens, bool(getattr(request, "stream", False))
        )
        reasons.append(f"policy {virtual.policy}")
        affinity_key = self._affinity_key(request, scope) if virtual.affinity else None
        if affinity_key is not None:
            sticky = self.affinity.get(affinity_key)
            if sticky is not None and sticky[1] > self.clock():
                chosen = next((d for d in ordered if d.id == sticky[0]), None)
                if (
                    chosen is not None
                    and chosen is not ordered[0]
                    and self.health.unavailable(chosen.id) is None
                    and self._worth_sticking(
                        virtual, chosen, ordered[0], request, prompt_tokens, output_tokens
                    )
                ):
                    ordered.remove(chosen)
                    ordered.insert(0, chosen)
                    reasons.append(f"affinity: this conversation was served by {chosen.id}")
        for candidate in candidates:
            if candidate.deployment in scores:
                candidate.score = scores[candidate.deployment]
        ordered = ordered[: virtual.max_attempts]
        route = RouteInfo(
            requested=requested,
            resolved=ordered[0].id,
            policy=virtual.policy,
            task=task,
            reason="; ".join(reasons),
            candidates=candidates,
        )
        return RoutePlan(candidates=ordered, route=route, listener=_PlanListener(self, affinity_key))

    # -- constraints ---------------------------------------------------------------------------

    def _violation(
        self,
        deployment: Deployment,
        constraints: Constraints,
        needed: set[str],
        prompt_tokens: int,
        request: ChatRequest | EmbeddingRequest,
    ) -> str | None:
        model = deployment.model
        provider = deployment.provider_name
        if constraints.min_quality_tier is not None and model.quality_tier < constraints.min_quality_tier:
            return f"quality tier {model.quality_tier} < {constraints.min_quality_tier}"
        missing = sorted(cap for cap in needed if not model.supports(cap))
        if missing:
            return f"lacks {', '.join(missing)}"
        if constraints.max_input_price is not None or constraints.max_output_price is not None:
            if model.price is None:
                return "no price in its table (a price limit applies)"
            price_in, price_out = usd_per_million(model.price, self.runtime.fx_rates)
            if constraints.max_input_price is not None and price_in > constraints.max_input_price:
                return f"input ${price_in:.4f}/M > ${constraints.max_input_price}/M"
            if constraints.max_output_price is not None and price_out > constraints.max_output_price:
                return f"output ${price_out:.4f}/M > ${constraints.max_output_price}/M"
        if constraints.providers_allow is not None and provider not in constraints.providers_allow:
            return f"provider {provider} not in the allow list"
        if provider in constraints.providers_deny:
            return f"provider {provider} is denied"
        if constraints.regions_allow is not None and deployment.jurisdiction not in constraints.regions_allow:
            return f"region {deployment.jurisdiction} not allowed"
        if deployment.jurisdiction in constraints.regions_deny:
            return f"region {deployment.jurisdiction} is denied"
        needed_context = prompt_tokens + (getattr(request, "max_tokens", None) or 0)
        if needed_context > model.context_window:
            return f"context window {model.context_window} < ~{needed_context} tokens needed"
        if deployment.provider.requires_api_key and not deployment.settings.secret():
            return "no API key configured"
        return None

    # -- policies ------------------------------------------------------------------------------

    def _order(
        self, virtual: VirtualModel, eligible: list[Deployment], prompt: int, output: int, stream: bool
    ) -> tuple[list[Deployment], dict[str, float]]:
        """The policy's order and each candidate's score (lower is better, except weights)."""
        position = {d.id: i for i, d in enumerate(eligible)}
        policy = virtual.policy
        if policy == "fallback":
            return list(eligible), {}
        if policy in ("cheapest", "cheapest_above_tier"):
            scores = {d.id: float(self._estimated_cost(d, prompt, output)) for d in eligible}
            return sorted(eligible, key=lambda d: (scores[d.id], position[d.id])), scores
        if policy == "fastest":
            scores = {d.id: self._speed(d, stream) for d in eligible}
            return sorted(eligible, key=lambda d: (scores[d.id], position[d.id])), scores
        if policy == "least_inflight":
            scores = {d.id: float(self.health.get(d.id).in_flight) for d in eligible}
            return sorted(eligible, key=lambda d: (scores[d.id], position[d.id])), scores
        # weighted: sample without replacement, proportional to weight (seeded for reproducibility)
        names = {d.id: name for d, name in zip(eligible, self._names_of(virtual, eligible), strict=True)}
        weights = {d.id: max(virtual.weights.get(names[d.id], 0.0), 0.0) for d in eligible}
        remaining = list(eligible)
        ordered = []
        while remaining:
            total = sum(weights[d.id] for d in remaining)
            if total <= 0:
                ordered.extend(remaining)
                break
            pick = self._rng.uniform(0, total)
            for d in remaining:
                pick -= weights[d.id]
                if pick <= 0:
                    break
            ordered.append(d)
            remaining.remove(d)
        return ordered, weights

    def _names_of(self, virtual: VirtualModel, eligible: list[Deployment]) -> list[str]:
        by_id = {}
        for name in virtual.candidates:
            found = self._deployments.get(name)
            if found is not None:
                by_id[found.id] = name
        return [by_id.get(d.id, d.id) for d in eligible]

    def _estimated_cost(self, deployment: Deployment, prompt: int, output: int, cached: int = 0) -> Decimal:
        """Estimated USD cost of this request on ``deployment`` (``cached`` prompt tokens at cache price)."""
        price = deployment.model.price
        if price is None:
            return Decimal("Infinity")
        usage = Usage.of(prompt, output, cached=min(cached, prompt))
        return compute_cost(usage, price, self.runtime.fx_rates).total

    def _worth_sticking(
        self,
        virtual: VirtualModel,
        sticky: Deployment,
        best: Deployment,
        request: ChatRequest | EmbeddingRequest,
        prompt: int,
        output: int,
    ) -> bool:
        """Affinity wins unless the policy is about cost and the cache hit does not pay for the difference:
        the sticky deployment with the conversation so far cached must cost no more than the best one."""
        if virtual.policy not in ("cheapest", "cheapest_above_tier") or not isinstance(request, ChatRequest):
            return True
        history = request.messages[:-1]
        cached = estimate_prompt_tokens(request.model_copy(update={"messages": history})) if history else 0
        return self._estimated_cost(sticky, prompt, output, cached) <= self._estimated_cost(
            best, prompt, output
        )

    def _speed(self, deployment: Deployment, stream: bool) -> float:
        health = self.health.get(deployment.id)
        value = health.ewma_ttft if stream and health.ewma_ttft is not None else health.ewma_latency
        return 0.0 if value is None else value  # unmeasured: try it (optimistic), so it gets measured

    # -- affinity ------------------------------------------------------------------------------

    def _affinity_key(self, request: ChatRequest | EmbeddingRequest, scope: str) -> str | None:
        metadata = getattr(request, "metadata", None) or {}
        if metadata.get("session_id"):
            return f"session:{scope}:{metadata['session_id']}"
        if not isinstance(request, ChatRequest):
            return None
        # The conversation's head (system/developer messages and the first user message) is the same
        # in every turn, and is the prompt prefix a provider's cache holds.
        head = []
        for message in request.messages:
            head.append(message.model_dump_json())
            if message.role == "user":
                break
        prefix = "\n".join(head)[:AFFINITY_PREFIX_CHARS]
        return "prefix:" + hashlib.sha256(f"{scope}\n{request.model}\n{prefix}".encode()).hexdigest()
