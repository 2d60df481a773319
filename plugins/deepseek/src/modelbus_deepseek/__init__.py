"""modelbus-deepseek: DeepSeek's OpenAI-format Chat Completions API.

DeepSeek speaks OpenAI Chat Completions (https://api-docs.deepseek.com/api/create-chat-completion)
with these differences, all handled here or by the OpenAI-compatible base:

* ``reasoning_content`` beside ``content`` in ``message`` and in stream ``delta`` (thinking mode, on
  by default for the V4 models; the legacy ``deepseek-reasoner`` id is thinking-only).
* Replaying reasoning (https://api-docs.deepseek.com/guides/thinking_mode): between two ``user``
  messages, if the model called tools, the ``reasoning_content`` of the assistant messages in between
  must be sent back in every later request (HTTP 400 otherwise); if it did not, it is not sent.
* Usage carries ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` (plus OpenAI's
  ``prompt_tokens_details.cached_tokens``); hits are billed at the cache-hit price. The base's
  ``parse_usage`` reads both shapes.
* While a request is queued the server sends ``: keep-alive`` SSE comments (streams) or blank lines
  before the JSON body (non-streamed). The core's SSE decoder drops comments and ``json.loads``
  skips leading whitespace, so neither needs code here; both are covered by wire samples.
* ``finish_reason: "insufficient_system_resource"``: generation cut short for lack of capacity.
* Errors by HTTP status (https://api-docs.deepseek.com/quick_start/error_codes): 400 Invalid Format,
  401 Authentication Fails, 402 Insufficient Balance, 422 Invalid Parameters, 429 Rate Limit Reached,
  500 Server Error, 503 Server Overloaded. The body's ``code`` is ``invalid_request_error`` for
  several of them (401 and 402 alike), so mapping is by status, never by that code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.chat import AssistantMessage, ChatRequest, FinishReason, UserMessage
from modelbus.types.models import ModelInfo

__all__ = ["DeepSeek", "plugin", "tool_turns"]


def tool_turns(messages: list[Any]) -> list[bool]:
    """For each message: does it sit in a user turn (the span between two user messages) in which
    the assistant called a tool? That is DeepSeek's rule for which ``reasoning_content`` to replay."""
    turn_of: list[int] = []
    turn = 0
    for message in messages:
        if isinstance(message, UserMessage):
            turn += 1
        turn_of.append(turn)
    with_tools = {
        turn_of[position]
        for position, message in enumerate(messages)
        if isinstance(message, AssistantMessage) and message.tool_calls
    }
    return [turn in with_tools for turn in turn_of]


class DeepSeek(OpenAICompatibleProvider):
    name = "deepseek"
    display_name = "DeepSeek"
    api_key_env = ("DEEPSEEK_API_KEY",)
    # One endpoint; the OpenAI-format base URL has no /v1 (the SDK-style /v1 alias is not needed).
    # Source: https://api-docs.deepseek.com/quick_start/pricing ("BASE URL (OpenAI Format)").
    regions = {"default": ("https://api.deepseek.com", "CN")}
    default_region = "default"
    docs_url = "https://api-docs.deepseek.com/"

    # Generation stopped because the service ran short of inference capacity: not a normal stop.
    finish_reasons: ClassVar[dict[str, FinishReason]] = {"insufficient_system_resource": "error"}
    reasoning_field = "reasoning_content"
    # Reasoning is replayed selectively (only on tool-call turns), see request_body below.
    send_reasoning_history = False

    # TODO(core): the replay rule needs the whole conversation, but OpenAICompatibleProvider only
    # offers the per-message ``message_to_wire`` (core 52c50bc has no ``messages_to_wire`` yet). A
    # ``messages_to_wire(messages)`` step (defaulting to mapping ``message_to_wire``) would let this be a
    # small override instead of a pass over the body.
    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        """The base body, with ``reasoning_content`` put back on the assistant messages of user turns
        that called tools (and only there: the base strips it everywhere)."""
        body = super().request_body(request, model)
        replay = tool_turns(request.messages)
        for wire, message, keep in zip(body["messages"], request.messages, replay, strict=True):
            if keep and isinstance(message, AssistantMessage) and message.reasoning_content:
                wire[self.reasoning_field] = message.reasoning_content
        return body


plugin = DeepSeek()
