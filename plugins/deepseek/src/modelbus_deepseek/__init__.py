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
from modelbus.types.chat import AssistantMessage, FinishReason, Message, UserMessage

__all__ = ["DeepSeek", "plugin", "tool_turns"]


def tool_turns(messages: list[Message]) -> list[bool]:
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
    # Reasoning is replayed selectively (only on tool-call turns), see messages_to_wire below.
    send_reasoning_history = False

    def messages_to_wire(self, messages: list[Message]) -> list[dict[str, Any]]:
        """The base messages (reasoning stripped everywhere), with ``reasoning_content`` put back on the
        assistant messages of user turns that called tools, and only there."""
        wire = super().messages_to_wire(messages)
        for item, message, keep in zip(wire, messages, tool_turns(messages), strict=True):
            if keep and isinstance(message, AssistantMessage) and message.reasoning_content:
                item[self.reasoning_field] = message.reasoning_content
        return wire


plugin = DeepSeek()
