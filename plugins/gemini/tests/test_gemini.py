"""The conformance kit, run against the Gemini plugin and its wire samples."""

from __future__ import annotations

from pathlib import Path

from modelbus_gemini import plugin

from modelbus.testing import ProviderConformanceTests


class TestGeminiConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"
