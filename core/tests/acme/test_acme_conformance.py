"""The conformance kit run against the core's own OpenAI-compatible test provider."""

from __future__ import annotations

from pathlib import Path

from acme_provider import plugin

from modelbus.testing import ProviderConformanceTests


class TestAcmeConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"
