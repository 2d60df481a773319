"""Testing kit for provider plugins: ``FakeUpstream``, wire samples and the conformance suite.

Importing this module needs pytest (``pip install modelbus[testing]``).
"""

from __future__ import annotations

from modelbus.testing.conformance import ProviderConformanceTests
from modelbus.testing.fake_upstream import FakeUpstream, RecordedRequest, openai_chat_responder
from modelbus.testing.samples import ResponseSpec, SSEItem, WireSample, load_sample, load_samples

__all__ = [
    "FakeUpstream",
    "ProviderConformanceTests",
    "RecordedRequest",
    "ResponseSpec",
    "SSEItem",
    "WireSample",
    "load_sample",
    "load_samples",
    "openai_chat_responder",
]
