"""How a request was routed: the candidates, why each was excluded, the choice and the attempts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelbus.types.base import WireModel


class Candidate(WireModel):
    deployment: str = Field(description="The deployment id, e.g. 'deepseek/deepseek-chat'.")
    excluded: str | None = Field(default=None, description="Why it was not eligible, if it was not.")
    score: float | None = Field(default=None, description="The policy's score (lower is better).")


class Attempt(WireModel):
    deployment: str
    outcome: Literal["ok", "error"]
    error_type: str | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    retry: int = 0


class RouteInfo(WireModel):
    """Why this deployment served the request (``response.route``, header ``x-modelbus-route``)."""

    requested: str = Field(description="The model id the caller asked for (an alias or virtual model).")
    resolved: str | None = Field(
        description="The deployment that served (or last tried); None when no candidate could be tried."
    )
    provider: str | None = Field(default=None, description="The provider of that deployment.")
    model: str | None = Field(default=None, description="The model id ('provider/model') of that deployment.")
    policy: str = "direct"
    task: str | None = None
    reason: str = ""
    candidates: list[Candidate] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    dropped_params: list[str] = Field(
        default_factory=list, description="Parameters the serving model lacks, dropped (compat='drop')."
    )

    def summary(self) -> str:
        """A one-line form for headers and logs."""
        tried = ",".join(f"{a.deployment}:{a.outcome}" for a in self.attempts)
        return f"policy={self.policy}; chose={self.resolved or '-'}; attempts={tried}; reason={self.reason}"
