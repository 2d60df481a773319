"""Canonical embeddings types (OpenAI's /v1/embeddings shape)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator

from modelbus.types.base import WireModel
from modelbus.types.chat import CostBreakdown
from modelbus.types.route import RouteInfo


class EmbeddingRequest(WireModel):
    model: str = Field(min_length=1)
    input: list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None, description="How vectors are returned; upstream calls always use floats."
    )
    input_type: Literal["query", "document"] | None = Field(
        default=None, description="What the texts are for retrieval models that embed them differently."
    )
    user: str | None = None
    extra: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and any(not isinstance(item, str) for item in value):
            raise ValueError("input must be a string or a list of strings (token arrays are not supported)")
        return value

    @field_validator("input")
    @classmethod
    def _no_empty_strings(cls, value: list[str]) -> list[str]:
        for index, item in enumerate(value):
            if not item:
                raise ValueError(f"input[{index}] is empty; every text must have at least one character")
        return value

    @classmethod
    def from_openai(cls, body: dict[str, Any]) -> EmbeddingRequest:
        fields = cls.field_names()
        known = {k: v for k, v in body.items() if k in fields and k != "extra"}
        extra = {k: v for k, v in body.items() if k not in fields}
        return cls.model_validate({**known, "extra": extra})


class Embedding(WireModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float]


class EmbeddingUsage(WireModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = Field(default=False, description="True when counted locally: the provider sent none.")


class EmbeddingResponse(WireModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)
    provider: str | None = None
    cost: Decimal | None = None
    cost_breakdown: CostBreakdown | None = None
    route: RouteInfo | None = None

    @property
    def vectors(self) -> list[list[float]]:
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]

    def to_openai(self, encoding_format: str | None = None) -> dict[str, Any]:
        """The OpenAI body; with ``encoding_format="base64"`` vectors are little-endian float32, base64."""
        body = self.model_dump(
            mode="json",
            exclude={
                "provider": True,
                "cost": True,
                "cost_breakdown": True,
                "route": True,
                "usage": {"estimated"},
            },
        )
        if encoding_format == "base64":
            import base64
            import struct

            for item in body["data"]:
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return body
