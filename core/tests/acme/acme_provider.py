"""A test provider on the OpenAI-compatible base: the core's own fixture plugin."""

from __future__ import annotations

from modelbus.providers import OpenAICompatibleProvider


class Acme(OpenAICompatibleProvider):
    name = "acme"
    display_name = "Acme AI"
    api_key_env = ("ACME_API_KEY",)
    regions = {"default": ("https://api.acme.test/v1", "US"), "eu": ("https://eu.acme.test/v1", "EU")}


plugin = Acme()
