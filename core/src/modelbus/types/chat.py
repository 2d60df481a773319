"""Canonical chat types, shaped like OpenAI Chat Completions (the lingua franca).

Requests are validated strictly: an unknown role, field or content part is a clear error rather
than a silent drop. Provider-only parameters travel in :attr:`ChatRequest.extra`.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from modelbus.types.base import WireModel
from modelbus.types.route import RouteInfo

# ------------------------------------------------------------------------------ content parts


class TextPart(WireModel):
    type: Literal["text"] = "text"
    text: str


class ImageURL(WireModel):
    url: str = Field(description="An https URL or a data: URL with base64 image bytes.")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(WireModel):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


def content_text(content: str | list[Any] | None) -> str:
    """The text of a message's content (parts joined; images skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


# ------------------------------------------------------------------------------ tool calls


class FunctionCall(WireModel):
    name: str
    arguments: str = Field(description="The arguments as a JSON object encoded in a string.")

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``ValueError`` on invalid JSON)."""
        return json.loads(self.arguments) if self.arguments else {}


class ToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# ------------------------------------------------------------------------------ messages


class SystemMessage(WireModel):
    role: Literal["system"] = "system"
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(WireModel):
    role: Literal["developer"] = "developer"
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(WireModel):
    role: Literal["user"] = "user"
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = Field(
        default=None, description="Reasoning/thinking text, kept apart from the answer."
    )
    reasoning_signature: str | None = Field(
        default=None, description="Opaque signature some providers need to replay reasoning (Anthropic)."
    )
    refusal: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _has_content_or_tool_calls(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls and self.refusal is None:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolMessage(WireModel):
    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | list[TextPart]
    name: str | None = None
    is_error: bool | None = Field(default=None, description="The tool failed (providers that can say so).")


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]

# ------------------------------------------------------------------------------ tools

_TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


def check_json_schema(schema: dict[str, Any], *, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` when ``schema`` is not a valid JSON Schema."""
    from jsonschema import Draft202012Validator  # lazy: only requests with tools pay for it
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "(root)"
        raise ValueError(f"{what} is not a valid JSON Schema at {path}: {exc.message}") from None


class FunctionDefinition(WireModel):
    name: str = Field(pattern=_TOOL_NAME)
    description: str | None = None
    parameters: dict[str, JsonValue] | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _parameters_is_schema(self) -> FunctionDefinition:
        if self.parameters is not None:
            check_json_schema(self.parameters, what=f"parameters of tool {self.name!r}")
            kind = self.parameters.get("type")
            if kind is not None and kind != "object":
                raise ValueError(
                    f"parameters of tool {self.name!r} must be an object schema, got type {kind!r}"
                )
        return self


class Tool(WireModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolChoiceFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    type: Literal["function"] = "function"
    function: ToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice

# ------------------------------------------------------------------------------ response format


class ResponseFormatText(WireModel):
    type: Literal["text"] = "text"


class ResponseFormatJSONObject(WireModel):
    type: Literal["json_object"] = "json_object"


class JSONSchemaFormat(WireModel):
    name: str = Field(pattern=_TOOL_NAME)
    description: str | None = None
    schema_: dict[str, JsonValue] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_is_valid(self) -> JSONSchemaFormat:
        check_json_schema(self.schema_, what=f"response_format schema {self.name!r}")
        return self


class ResponseFormatJSONSchema(WireModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema, Field(discriminator="type")
]

# ------------------------------------------------------------------------------ request


class StreamOptions(WireModel):
    include_usage: bool | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ChatRequest(WireModel):
    """A chat completion request. ``model`` is a modelbus id such as ``deepseek/deepseek-chat``."""

    # NaN or Infinity in a sampling parameter is a caller's mistake to report, not a value to send
    model_config = ConfigDict(allow_inf_nan=False)

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    reasoning_effort: ReasoningEffort | None = None
    user: str | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="Routing hints: task, session_id, tags. Not sent upstream."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    extra: dict[str, JsonValue] = Field(
        default_factory=dict, description="Provider-only parameters, merged into the upstream body as-is."
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_max_completion_tokens(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_completion_tokens" in data:
            data = dict(data)
            value = data.pop("max_completion_tokens")
            if data.get("max_tokens") not in (None, value):
                raise ValueError("max_tokens and max_completion_tokens disagree; send one of them")
            data["max_tokens"] = value
        return data

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise ValueError("tool_choice was given but no tools were")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tools:
            names = {tool.function.name for tool in self.tools}
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names {self.tool_choice.function.name!r}, which is not among the tools "
                    f"({', '.join(sorted(names))})"
                )
        clashes = self.extra.keys() & type(self).field_names() if self.extra else None
        if clashes:
            raise ValueError(f"extra repeats typed fields {sorted(clashes)}; set them directly instead")
        return self

    @classmethod
    def from_openai(cls, body: dict[str, Any]) -> ChatRequest:
        """Build from an OpenAI request body: unknown top-level keys (``extra_body``) go to ``extra``."""
        fields = cls.field_names()
        known = {k: v for k, v in body.items() if k in fields and k != "extra"}
        if "max_completion_tokens" in body:
            known["max_completion_tokens"] = body["max_completion_tokens"]
        extra = {k: v for k, v in body.items() if k not in fields and k != "max_completion_tokens"}
        if isinstance(body.get("extra"), dict):
            extra.update(body["extra"])
        return cls.model_validate({**known, "extra": extra})

    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def uses_images(self) -> bool:
        return any(
            isinstance(message, UserMessage)
            and isinstance(message.content, list)
            and any(isinstance(part, ImagePart) for part in message.content)
            for message in self.messages
        )

    def prompt_text(self) -> str:
        """All message text concatenated (for token estimates and prefix affinity)."""
        return "\n".join(content_text(message.content) for message in self.messages)


# ------------------------------------------------------------------------------ usage and cost


class PromptTokensDetails(WireModel):
    cached_tokens: int = Field(default=0, description="Prompt tokens read from the provider's cache.")
    cache_creation_tokens: int = Field(default=0, description="Prompt tokens written to the cache.")


class CompletionTokensDetails(WireModel):
    reasoning_tokens: int = Field(default=0, description="Completion tokens spent on reasoning.")


class Usage(WireModel):
    """Token counts. ``prompt_tokens`` includes cached and cache-write tokens; ``completion_tokens``
    includes reasoning tokens (OpenAI's convention, whatever the provider's)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = Field(default_factory=CompletionTokensDetails)
    estimated: bool = Field(default=False, description="True when counted locally: the provider sent none.")

    @model_validator(mode="after")
    def _fill_total(self) -> Usage:
        if not self.total_tokens:
            self.total_tokens = self.prompt_tokens + self.completion_tokens
        return self

    @property
    def cached_tokens(self) -> int:
        return self.prompt_tokens_details.cached_tokens

    @property
    def cache_creation_tokens(self) -> int:
        return self.prompt_tokens_details.cache_creation_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self.completion_tokens_details.reasoning_tokens

    @classmethod
    def of(
        cls,
        prompt: int,
        completion: int,
        *,
        cached: int = 0,
        cache_creation: int = 0,
        reasoning: int = 0,
        total: int | None = None,
        estimated: bool = False,
    ) -> Usage:
        """Usage from plain counts (one validation for the whole nested record)."""
        return cls.model_validate(
            {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total if total is not None else prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached, "cache_creation_tokens": cache_creation},
                "completion_tokens_details": {"reasoning_tokens": reasoning},
                "estimated": estimated,
            }
        )


class CostBreakdown(WireModel):
    """What a call cost, in USD, and the price table it was computed from."""

    total: Decimal
    input: Decimal = Decimal(0)
    cached_input: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    currency: Literal["USD"] = "USD"
    price_currency: str = "USD"
    fx_rate: Decimal | None = Field(default=None, description="USD per unit of price_currency, if converted.")
    price_as_of: str | None = None
    price_source: str | None = None


# ------------------------------------------------------------------------------ response

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class ResponseMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning_signature: str | None = None
    refusal: str | None = None

    def to_assistant_message(self) -> AssistantMessage:
        """This reply as a message to send back in the next turn's history."""
        return AssistantMessage(
            content=self.content if self.content is not None or self.tool_calls else "",
            tool_calls=self.tool_calls,
            reasoning_content=self.reasoning_content,
            reasoning_signature=self.reasoning_signature,
        )


class Choice(WireModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason | None = None
    native_finish_reason: str | None = Field(default=None, description="The provider's own value.")
    logprobs: JsonValue = None


# fields that are modelbus's own and are left out of OpenAI-shaped bodies
_MODELBUS_ONLY = {"provider", "cost", "cost_breakdown", "route"}
_CHOICE_ONLY = {"native_finish_reason"}
_MESSAGE_ONLY = {"reasoning_signature"}


class ChatResponse(WireModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    provider: str | None = None
    cost: Decimal | None = Field(default=None, description="Cost in USD (see cost_breakdown for the source).")
    cost_breakdown: CostBreakdown | None = None
    route: RouteInfo | None = None

    @property
    def text(self) -> str:
        """The first choice's content ("" when it only called tools)."""
        return (self.choices[0].message.content or "") if self.choices else ""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``chat.completion`` body (modelbus-only fields removed)."""
        body = self.model_dump(
            mode="json",
            by_alias=True,
            exclude={
                **{k: True for k in _MODELBUS_ONLY},
                "choices": {"__all__": {**{k: True for k in _CHOICE_ONLY}, "message": _MESSAGE_ONLY}},
                "usage": {"estimated"},
            },
        )
        for choice in body["choices"]:
            message = choice["message"]
            for key in ("reasoning_content", "refusal", "tool_calls"):
                if message.get(key) is None:
                    message.pop(key, None)
        return body


# ------------------------------------------------------------------------------ stream chunks


class FunctionCallDelta(WireModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(WireModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(WireModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning_signature: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None


class ChunkChoice(WireModel):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: FinishReason | None = None
    native_finish_reason: str | None = None
    logprobs: JsonValue = None


class ChatChunk(WireModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    provider: str | None = None
    cost: Decimal | None = None
    cost_breakdown: CostBreakdown | None = None
    route: RouteInfo | None = None

    @property
    def text(self) -> str:
        return "".join(choice.delta.content or "" for choice in self.choices)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``chat.completion.chunk`` body (modelbus-only fields removed)."""
        body = self.model_dump(
            mode="json",
            by_alias=True,
            exclude={
                **{k: True for k in _MODELBUS_ONLY},
                "choices": {"__all__": {**{k: True for k in _CHOICE_ONLY}, "delta": _MESSAGE_ONLY}},
                "usage": {"estimated"},
            },
        )
        for choice in body["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        return body


class ChunkAccumulator:
    """Folds stream chunks into the :class:`ChatResponse` a non-stream call would have returned."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.provider: str | None = None
        self.system_fingerprint: str | None = None
        self.usage: Usage | None = None
        self.cost: Decimal | None = None
        self.cost_breakdown: CostBreakdown | None = None
        self.route: RouteInfo | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    @property
    def started(self) -> bool:
        """True once any content, reasoning or tool-call delta has been seen."""
        return any(c["content"] or c["reasoning"] or c["tools"] for c in self._choices.values())

    def add(self, chunk: ChatChunk) -> None:
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        self.provider = self.provider or chunk.provider
        self.system_fingerprint = self.system_fingerprint or chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.cost is not None:
            self.cost, self.cost_breakdown = chunk.cost, chunk.cost_breakdown
        if chunk.route is not None:
            self.route = chunk.route
        for choice in chunk.choices:
            slot = self._choices.setdefault(
                choice.index,
                {
                    "content": [],
                    "reasoning": [],
                    "signature": None,
                    "refusal": [],
                    "tools": {},
                    "finish": None,
                    "native": None,
                },
            )
            delta = choice.delta
            if delta.content:
                slot["content"].append(delta.content)
            if delta.reasoning_content:
                slot["reasoning"].append(delta.reasoning_content)
            if delta.reasoning_signature:
                slot["signature"] = delta.reasoning_signature
            if delta.refusal:
                slot["refusal"].append(delta.refusal)
            for call in delta.tool_calls or ():
                tool = slot["tools"].setdefault(call.index, {"id": None, "name": [], "arguments": []})
                if call.id:
                    tool["id"] = call.id
                if call.function is not None:
                    if call.function.name:
                        tool["name"].append(call.function.name)
                    if call.function.arguments:
                        tool["arguments"].append(call.function.arguments)
            if choice.finish_reason is not None:
                slot["finish"] = choice.finish_reason
                slot["native"] = choice.native_finish_reason

    def response(self) -> ChatResponse:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            tool_calls = [
                ToolCall(
                    id=tool["id"] or f"call_{index}_{position}",
                    function=FunctionCall(name="".join(tool["name"]), arguments="".join(tool["arguments"])),
                )
                for position, tool in sorted(slot["tools"].items())
            ]
            choices.append(
                Choice(
                    index=index,
                    message=ResponseMessage(
                        content="".join(slot["content"]) if slot["content"] or not tool_calls else None,
                        tool_calls=tool_calls or None,
                        reasoning_content="".join(slot["reasoning"]) or None,
                        reasoning_signature=slot["signature"],
                        refusal="".join(slot["refusal"]) or None,
                    ),
                    finish_reason=slot["finish"],
                    native_finish_reason=slot["native"],
                )
            )
        return ChatResponse(
            id=self.id or "chatcmpl-stream",
            created=self.created or int(time.time()),
            model=self.model or "",
            choices=choices,
            usage=self.usage,
            system_fingerprint=self.system_fingerprint,
            provider=self.provider,
            cost=self.cost,
            cost_breakdown=self.cost_breakdown,
            route=self.route,
        )


def response_chunks(response: ChatResponse) -> list[ChatChunk]:
    """A complete response as the stream of chunks that accumulates back into it (usage chunk last)."""
    common = {
        "id": response.id,
        "created": response.created,
        "model": response.model,
        "system_fingerprint": response.system_fingerprint,
        "provider": response.provider,
    }
    chunks = []
    for choice in response.choices:
        message = choice.message
        delta: dict[str, Any] = {"role": "assistant"}
        for key in ("content", "reasoning_content", "reasoning_signature", "refusal"):
            if getattr(message, key):
                delta[key] = getattr(message, key)
        if message.tool_calls:
            delta["tool_calls"] = [
                {
                    "index": position,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for position, call in enumerate(message.tool_calls)
            ]
        chunks.append(
            ChatChunk.model_validate(
                {
                    **common,
                    "choices": [
                        {
                            "index": choice.index,
                            "delta": delta,
                            "finish_reason": choice.finish_reason,
                            "native_finish_reason": choice.native_finish_reason,
                        }
                    ],
                }
            )
        )
    chunks.append(
        ChatChunk.model_validate(
            {
                **common,
                "usage": response.usage,
                "cost": response.cost,
                "cost_breakdown": response.cost_breakdown,
            }
        )
    )
    return chunks


def accumulate(chunks: list[ChatChunk]) -> ChatResponse:
    """The response a list of stream chunks adds up to."""
    acc = ChunkAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.response()
