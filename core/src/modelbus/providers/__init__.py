"""Base classes for provider plugins."""

from __future__ import annotations

from modelbus.providers.base import ProviderPlugin
from modelbus.providers.openai_compatible import OpenAICompatibleProvider

__all__ = ["OpenAICompatibleProvider", "ProviderPlugin"]
