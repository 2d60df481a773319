"""Per-call state handed to hooks: the call context and the state of one stream."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from modelbus.types.chat import ChatChunk, ChatRequest, FinishReason, Usage
from modelbus.types.models import ModelInfo

_ids: dict[str, Any] = {}


def _seed_ids() -> None:
    """A random key per process (re-drawn in forked children) and a counter."""
    _ids["key"] = os.urandom(32)
    _ids["counter"] = itertools.count()


def new_request_id() -> str:
    """``mb-`` and 24 hex digits: a per-process counter under a keyed BLAKE2b with a random per-process
    key. Unique (a counter never repeats under one key; keys differ across processes and restarts) and
    unlinkable: two ids do not tell a caller how many requests were served between them. A ``uuid4``
    per call cost a system call for the same guarantees."""
    counter = next(_ids["counter"]).to_bytes(8, "little")
    return "mb-" + hashlib.blake2b(counter, key=_ids["key"], digest_size=12).hexdigest()


_seed_ids()
os.register_at_fork(after_in_child=_seed_ids)


@dataclass(slots=True)
class CallContext:
    """Who is calling and how (seen by ``before_call``/``after_call`` hooks).

    ``metadata`` is free-form: the gateway puts the caller's key id and team here, the client puts
    what the caller passed as ``metadata=``. ``log_content`` says whether prompt and completion text
    may be logged (off by default).
    """

    request_id: str = field(default_factory=new_request_id)
    requested_model: str = ""
    provider: str | None = None
    model: ModelInfo | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    log_content: bool = False
    started_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class StreamState:
    """What a provider's stream normalizer keeps between events of one stream.

    A normalizer sets ``done`` when the provider's end-of-stream marker arrives (``[DONE]``,
    ``message_stop``): later events are ignored. For protocols that end at connection close (Gemini),
    it sets ``may_end`` instead once the stream is complete enough to end, and later events (a
    trailing usage record) are still read. A connection that closes before either is reported as
    :class:`~modelbus.errors.StreamInterruptedError`. ``scratch`` is the provider's own.
    """

    provider: str
    model: ModelInfo
    request: ChatRequest
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    model_name: str = ""
    done: bool = False
    may_end: bool = False
    usage: Usage | None = None
    scratch: dict[str, Any] = field(default_factory=dict)

    def chunk(
        self,
        *,
        content: str | None = None,
        reasoning_content: str | None = None,
        tool_calls: list[Any] | None = None,
        finish_reason: FinishReason | None = None,
        native_finish_reason: str | None = None,
        role: str | None = None,
        usage: Usage | None = None,
        index: int = 0,
        reasoning_signature: str | None = None,
    ) -> ChatChunk:
        """A canonical chunk with this stream's id, model and creation time filled in."""
        choices = []
        if any(
            v is not None
            for v in (content, reasoning_content, tool_calls, finish_reason, role, reasoning_signature)
        ):
            delta: dict[str, Any] = {}
            for key, value in (
                ("role", role),
                ("content", content),
                ("reasoning_content", reasoning_content),
                ("reasoning_signature", reasoning_signature),
                ("tool_calls", tool_calls),
            ):
                if value is not None:
                    delta[key] = value
            choices.append(
                {
                    "index": index,
                    "delta": delta,
                    "finish_reason": finish_reason,
                    "native_finish_reason": native_finish_reason,
                }
            )
        return ChatChunk.model_validate(
            {
                "id": self.id or "chatcmpl-" + new_request_id()[3:],
                "created": self.created,
                "model": self.model_name or self.model.id,
                "choices": choices,
                "usage": usage,
                "provider": self.provider,
            }
        )
