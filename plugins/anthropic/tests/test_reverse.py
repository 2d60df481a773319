"""request_from_anthropic: an Anthropic Messages API request read back into a canonical ChatRequest."""

from __future__ import annotations

import pytest
from modelbus_anthropic import request_from_anthropic

from modelbus.errors import BadRequestError
from modelbus.types.chat import AssistantMessage, ImagePart, SystemMessage, ToolMessage, UserMessage


def test_full_request() -> None:
    request = request_from_anthropic(
        {
            "model": "claude-opus-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look it up."},
                        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "png"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": "a PNG",
                            "is_error": False,
                        },
                        {"type": "text", "text": "Go on."},
                    ],
                },
            ],
            "tools": [{"name": "search", "description": "Search", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "metadata": {"user_id": "u-1"},
            "output_config": {"effort": "xhigh"},
            "top_k": 10,
            "stream": True,
        }
    )
    assert request.model == "anthropic/claude-opus-5"
    assert (request.max_tokens, request.temperature, request.stop, request.user) == (
        1024,
        0.5,
        ["END"],
        "u-1",
    )
    assert request.stream is True
    assert request.tool_choice == "required"
    assert request.parallel_tool_calls is False
    assert request.reasoning_effort == "xhigh"  # Anthropic's levels above high are canonical too
    assert request.extra == {"top_k": 10}
    assert request.tools is not None
    assert request.tools[0].function.parameters == {"type": "object"}
    kinds = [type(m) for m in request.messages]
    assert kinds == [SystemMessage, UserMessage, AssistantMessage, ToolMessage, UserMessage]
    result = request.messages[3]
    assert isinstance(result, ToolMessage)
    assert result.is_error is False  # the tool_result's is_error is kept
    image = request.messages[1].content[0]
    assert isinstance(image, ImagePart)
    assert image.image_url.url == "data:image/png;base64,AAAA"
    assistant = request.messages[2]
    assert isinstance(assistant, AssistantMessage)
    assert assistant.content == "Let me look it up."
    assert assistant.tool_calls is not None
    assert assistant.tool_calls[0].function.parsed_arguments() == {"q": "png"}


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "minimal"),
        ({"type": "enabled", "budget_tokens": 4096}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32768}, "high"),
        ({"type": "enabled", "budget_tokens": 49152}, "xhigh"),
        ({"type": "enabled", "budget_tokens": 60000}, "max"),
        ({"type": "adaptive"}, None),
    ],
)
def test_thinking_budget_to_effort(thinking: dict[str, object], effort: str | None) -> None:
    body = {
        "model": "m",
        "max_tokens": 40000,
        "messages": [{"role": "user", "content": "x"}],
        "thinking": thinking,
    }
    assert request_from_anthropic(body).reasoning_effort == effort


def test_kept_as_extra_and_native_json() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
        "thinking": {"type": "disabled"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    request = request_from_anthropic(body)
    assert request.extra == {"thinking": {"type": "disabled"}}
    assert request.response_format is not None
    assert request.response_format.type == "json_schema"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}],
        [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}],
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
                    }
                ],
            }
        ],
        [{"role": "robot", "content": "x"}],
    ],
)
def test_no_canonical_equivalent(messages: list[dict[str, object]]) -> None:
    with pytest.raises(BadRequestError):
        request_from_anthropic({"model": "m", "max_tokens": 1, "messages": messages})


def test_server_tools_are_refused() -> None:
    body = {
        "model": "m",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    with pytest.raises(BadRequestError, match="server tool"):
        request_from_anthropic(body)
