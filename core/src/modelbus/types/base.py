"""Base model for every canonical wire shape."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Strict pydantic model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, validate_assignment=False, defer_build=True
    )

    @classmethod
    @functools.cache
    def field_names(cls) -> frozenset[str]:
        """The model's field names, computed once per class (``model_fields`` is slow on the hot path)."""
        return frozenset(cls.model_fields)

    def to_wire(self, **kwargs: Any) -> dict[str, Any]:
        """JSON-able dict with aliases and without ``None`` fields (the OpenAI wire convention)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, **kwargs)
