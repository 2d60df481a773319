"""JSON decoding of upstream bodies: orjson first, the standard library where orjson is stricter."""

from __future__ import annotations

import math

import pytest

from modelbus.errors import MalformedResponseError
from modelbus.http import HttpRequest, HttpResponse, loads_json


def test_bodies_orjson_refuses_still_decode() -> None:
    decoded = loads_json(b'{"logprob": -Infinity, "x": NaN, "big": 123456789012345678901234567890}')
    assert decoded["logprob"] == -math.inf
    assert math.isnan(decoded["x"])
    assert decoded["big"] == 123456789012345678901234567890  # exact, not a float
    assert loads_json(b'"\\ud83d"') == "\ud83d"  # half an emoji split across stream events
    assert loads_json(b'\xef\xbb\xbf{"ok": true}') == {"ok": True}  # a byte-order mark


def test_a_body_that_is_not_json_is_still_a_typed_error() -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        HttpResponse(200, {}, b"\xff\xfe<html>").json(provider="acme")


def test_request_bodies_are_compact_utf8() -> None:
    body = HttpRequest("POST", "http://x/v1", json={"text": "héllo 你好", "n": 1}).body_bytes()
    assert body == '{"text":"héllo 你好","n":1}'.encode()


def test_nan_sampling_parameters_are_refused_not_sent_as_null() -> None:
    from modelbus.types.chat import ChatRequest

    with pytest.raises(ValueError, match="temperature"):
        ChatRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": math.nan}
        )
