"""The ``[router]`` table of config.toml: virtual models, extra deployments, breaker settings.

[router.models."router/cheap-chat"]
policy = "cheapest"
candidates = ["deepseek/deepseek-chat", "qwen/qwen-plus", "openai/gpt-5.4-mini"]
min_quality_tier = 2
require = ["tools"]
tasks = { code = "router/best-code" }

[router.deployments.deepseek-backup]       # one provider, another key or region
provider = "deepseek"
model = "deepseek-chat"
settings = { api_key_env = "DEEPSEEK_BACKUP_KEY" }
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelbus.errors import ConfigError
from modelbus.types.models import Capability
from modelbus.validation import describe_validation_error

Policy = Literal["fallback", "cheapest", "fastest", "weighted", "least_inflight", "cheapest_above_tier"]
TASKS = ("chat", "code", "reasoning", "summarize", "extract", "embed")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Constraints(_Model):
    """What every candidate must satisfy (per virtual model, tightened per request)."""

    min_quality_tier: int | None = Field(default=None, ge=1, le=5)
    max_input_price: Decimal | None = Field(default=None, ge=0, description="USD per million input tokens.")
    max_output_price: Decimal | None = Field(default=None, ge=0, description="USD per million output tokens.")
    require: list[Capability] = Field(default_factory=list)
    providers_allow: list[str] | None = None
    providers_deny: list[str] = Field(default_factory=list)
    regions_allow: list[str] | None = Field(default=None, description="Jurisdictions such as CN, US, EU.")
    regions_deny: list[str] = Field(default_factory=list)

    def tightened(self, other: Constraints) -> Constraints:
        """Both sets of constraints at once (the stricter of each)."""

        def lower(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)

        def higher(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else max(a, b)

        def intersect(a: list[str] | None, b: list[str] | None) -> list[str] | None:
            return b if a is None else a if b is None else [x for x in a if x in b]

        return Constraints(
            min_quality_tier=higher(self.min_quality_tier, other.min_quality_tier),
            max_input_price=lower(self.max_input_price, other.max_input_price),
            max_output_price=lower(self.max_output_price, other.max_output_price),
            require=sorted(set(self.require) | set(other.require)),
            providers_allow=intersect(self.providers_allow, other.providers_allow),
            providers_deny=sorted(set(self.providers_deny) | set(other.providers_deny)),
            regions_allow=intersect(self.regions_allow, other.regions_allow),
            regions_deny=sorted(set(self.regions_deny) | set(other.regions_deny)),
        )


class VirtualModel(Constraints):
    policy: Policy = "fallback"
    candidates: list[str] = Field(min_length=1, description="Model ids or names of [router.deployments].")
    weights: dict[str, float] = Field(default_factory=dict, description="weighted: relative share.")
    tasks: dict[str, str] = Field(default_factory=dict, description="Task -> another virtual model.")
    affinity: bool = Field(default=True, description="Keep a conversation on the deployment that served it.")
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Deployments tried at most, in policy order (each with the client's own retries).",
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; tasks are {', '.join(TASKS)}")
        return value

    @model_validator(mode="after")
    def _policy_needs(self) -> VirtualModel:
        if self.policy == "cheapest_above_tier" and self.min_quality_tier is None:
            raise ValueError("policy cheapest_above_tier needs min_quality_tier")
        if self.policy == "weighted":
            missing = [c for c in self.candidates if c not in self.weights]
            if missing:
                raise ValueError(f"policy weighted needs a weight for every candidate; missing {missing}")
        return self


class DeploymentConfig(_Model):
    provider: str
    model: str
    settings: dict[str, Any] = Field(default_factory=dict, description="Overrides of [providers.<provider>].")


class BreakerConfig(_Model):
    failures: int = Field(default=5, ge=1, description="Retryable failures within `window` that open it.")
    window: float = Field(default=30.0, gt=0)
    cooldown: float = Field(default=15.0, gt=0, description="Seconds open before a half-open trial.")


class RouterConfig(_Model):
    models: dict[str, VirtualModel] = Field(default_factory=dict)
    deployments: dict[str, DeploymentConfig] = Field(default_factory=dict)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    seed: int | None = Field(default=None, description="Seed the weighted policy for reproducible routes.")
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)
    affinity_ttl: float = Field(default=900.0, gt=0)
    affinity_max_entries: int = Field(
        default=100_000, ge=1, description="Conversations remembered for affinity; the oldest go first."
    )
    probe_interval: float = Field(default=30.0, ge=0, description="Gateway: seconds between probes (0: off).")

    @field_validator("models")
    @classmethod
    def _names(cls, value: dict[str, VirtualModel]) -> dict[str, VirtualModel]:
        for name, model in value.items():
            if not name.startswith("router/"):
                raise ValueError(f"virtual model {name!r} must be named router/<name>")
            for task, target in model.tasks.items():
                if target not in value:
                    raise ValueError(
                        f"{name}: task {task!r} points at {target!r}, which is not a virtual model"
                    )
        return value

    @classmethod
    def from_config(cls, data: dict[str, Any], source: str) -> RouterConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            message, _ = describe_validation_error(exc)
            raise ConfigError(f"invalid [router] in {source}: {message}") from None
