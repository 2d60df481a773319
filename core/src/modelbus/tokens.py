"""Cheap token estimates for when a provider reports no usage and for context-length checks.

Not a tokenizer: roughly 4 characters per token for Latin text and one token per CJK character,
which is within ~25% for English and Chinese on BPE vocabularies. Usage built from it is marked
``estimated=True``.
"""

from __future__ import annotations

import re

from modelbus.types.chat import AssistantMessage, ChatRequest, ChatResponse, content_text

_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff]")
MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    wide = len(_WIDE.findall(text))
    return wide + (len(text) - wide + 3) // 4


def estimate_prompt_tokens(request: ChatRequest) -> int:
    total = 0
    for message in request.messages:
        total += MESSAGE_OVERHEAD + estimate_tokens(content_text(message.content))
        # isinstance, not getattr: a missing attribute on a pydantic model is a slow exception path
        for call in (message.tool_calls if isinstance(message, AssistantMessage) else None) or ():
            total += estimate_tokens(call.function.name) + estimate_tokens(call.function.arguments)
    for tool in request.tools or ():
        total += estimate_tokens(tool.function.model_dump_json())
    return total


def estimate_completion_tokens(response: ChatResponse) -> tuple[int, int]:
    """(completion tokens, of which reasoning) for a response's text, reasoning and tool calls."""
    completion = reasoning = 0
    for choice in response.choices:
        message = choice.message
        reasoning += estimate_tokens(message.reasoning_content or "")
        completion += estimate_tokens(message.content or "")
        for call in message.tool_calls or ():
            completion += estimate_tokens(call.function.name) + estimate_tokens(call.function.arguments)
    return completion + reasoning, reasoning
