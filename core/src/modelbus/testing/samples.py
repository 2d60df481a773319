"""Wire samples: a provider's recorded request/response pairs, transcribed from its API reference.

One JSON file per sample. ``source`` must cite the documentation page the sample was taken from.
A streamed body can live verbatim in a side file (``"sse_file": "chat_stream.sse"``) so that the
transcription keeps the provider's exact bytes (``data:`` without a space, comments, CRLF...).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SSEItem(_Model):
    """One event: ``data`` (an object is sent as compact JSON, a string as-is) and an optional name."""

    event: str | None = None
    data: Any = None
    raw: str | None = Field(default=None, description="Exact event text, sent followed by a blank line.")

    def encode(self) -> bytes:
        if self.raw is not None:
            return (self.raw.rstrip("\n") + "\n\n").encode()
        data = self.data if isinstance(self.data, str) else json.dumps(self.data, ensure_ascii=False)
        head = f"event: {self.event}\n" if self.event else ""
        return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


class ResponseSpec(_Model):
    """What the fake upstream answers."""

    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    sse: list[SSEItem] | None = None
    sse_text: str | None = Field(default=None, description="A whole event-stream body, verbatim.")
    event_delay: float = 0.0

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def is_stream(self) -> bool:
        return self.sse is not None or self.sse_text is not None

    def stream_parts(self) -> list[bytes]:
        if self.sse_text is not None:
            # keep the text's own line endings; split after each blank line so events arrive one by one
            text = self.sse_text
            parts, start = [], 0
            for sep in ("\r\n\r\n", "\n\n"):
                if sep in text:
                    while (end := text.find(sep, start)) != -1:
                        parts.append(text[start : end + len(sep)].encode())
                        start = end + len(sep)
                    break
            if start < len(text):
                parts.append(text[start:].encode())
            return parts
        return [item.encode() for item in self.sse or []]

    def body_bytes(self) -> bytes:
        if self.body is not None:
            return self.body.encode()
        if self.json_body is not None:
            return json.dumps(self.json_body, ensure_ascii=False).encode()
        return b""


class ExpectedRequest(_Model):
    """What the translated request must contain (``json``: a subset match; ``absent``: keys not sent)."""

    method: str = "POST"
    path: str
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    absent: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Exchange(_Model):
    request: ExpectedRequest
    response: ResponseSpec


class ExpectedToolCall(_Model):
    name: str
    arguments: dict[str, Any]


class ExpectedError(_Model):
    type: str
    retryable: bool | None = None
    retry_after: float | None = None
    provider_code: str | None = None
    status_code: int | None = None


class ExpectedUsage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


class Expectation(_Model):
    content: str | None = None
    content_contains: str | None = None
    reasoning_content: str | None = None
    reasoning_signature: str | None = None
    finish_reason: str | None = None
    tool_calls: list[ExpectedToolCall] | None = None
    usage: ExpectedUsage | None = None
    cost_usd: Decimal | None = None
    error: ExpectedError | None = None
    embeddings: int | None = Field(default=None, description="Number of vectors.")
    dimensions: int | None = None
    healthy: bool | None = None
    model_ids: list[str] | None = Field(default=None, description="kind 'models': ids listed live.")


SampleKind = Literal["chat", "chat_stream", "embedding", "health", "models"]


class WireSample(_Model):
    name: str
    source: str = Field(
        pattern=r"^https?://", description="The documentation page this was transcribed from."
    )
    notes: str | None = None
    kind: SampleKind
    tags: list[str] = Field(default_factory=list, description="e.g. tools, error, reasoning, usage")
    request: dict[str, Any] = Field(
        default_factory=dict, description="The canonical request (client kwargs)."
    )
    settings: dict[str, Any] = Field(default_factory=dict)
    upstream: Exchange
    expect: Expectation
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _stream_kind_matches(self) -> WireSample:
        if (
            self.kind == "chat_stream"
        ) != self.upstream.response.is_stream and self.upstream.response.status < 400:
            raise ValueError(f"sample {self.name}: kind {self.kind!r} does not match the response body type")
        return self


def load_sample(path: Path) -> WireSample:
    data = json.loads(path.read_text(encoding="utf-8"))
    response = data.get("upstream", {}).get("response", {})
    for key, target in (("sse_file", "sse_text"), ("body_file", "body")):
        if key in response:
            response[target] = (path.parent / response.pop(key)).read_text(encoding="utf-8")
    sample = WireSample.model_validate({"name": path.stem, **data})
    sample.path = path
    return sample


def load_samples(directory: str | Path) -> list[WireSample]:
    """Every ``*.json`` sample in ``directory``, sorted by name."""
    directory = Path(directory)
    samples = [load_sample(path) for path in sorted(directory.glob("*.json"))]
    if not samples:
        raise FileNotFoundError(f"no wire samples (*.json) in {directory}")
    return samples
