"""The core's conformance kit run against the Anthropic plugin (wire samples in samples/)."""

from __future__ import annotations

from pathlib import Path

from modelbus_anthropic import plugin

from modelbus.testing import ProviderConformanceTests


class TestAnthropicConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"
