"""``ModelBus``: a LlamaIndex function-calling LLM on top of modelbus."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from modelbus.connection import Connection, endpoint_from_env, providers_without_keys, request_tool_choice
from modelbus.types import ChunkAccumulator

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from modelbus import AsyncClient, Client
    from modelbus.types import ChatChunk, ModelInfo, ResponseMessage, Usage
    from modelbus.types import ChatResponse as ModelbusResponse

__all__ = ["ModelBus"]

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "developer",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}


class ModelBus(FunctionCallingLLM):
    """Every LLM provider modelbus knows, as one LlamaIndex ``FunctionCallingLLM`` (or a modelbus gateway).

    Install ``llama-index-llms-modelbus`` and a provider plugin (``modelbus-deepseek``...) with its
    key in the environment (``DEEPSEEK_API_KEY``) or in modelbus's ``config.toml``; or point
    ``base_url`` at a modelbus gateway with a virtual key.

    Examples:
        .. code-block:: python

            from llama_index.llms.modelbus import ModelBus

            llm = ModelBus(model="deepseek/deepseek-chat")
            print(llm.complete("Paul Graham is ").text)

            gateway = ModelBus(
                model="deepseek/deepseek-chat", base_url="http://localhost:4000/v1", api_key="mb-..."
            )

    ``metadata`` (context window, function calling) comes from modelbus's model tables
    (``Client.resolve``). Responses carry usage, cost and the provider in ``additional_kwargs``, and
    the modelbus response in ``raw``; tool calls are ``ToolCallBlock`` blocks and reasoning is a
    ``ThinkingBlock``.
    """

    model: str = Field(description="A modelbus model id (provider/model) or alias.")
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, description="Most tokens to generate.")
    reasoning_effort: str | None = Field(
        default=None, description="For reasoning models: low, medium, high..."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request fields for every call (ChatRequest fields or provider-only parameters).",
    )
    timeout: float | None = Field(default=None, description="Seconds per call, retries included.")
    max_retries: int | None = Field(default=None, description="Retries on retryable errors.")
    api_key: str | None = Field(
        default=None,
        exclude=True,
        description="The gateway's virtual key (env MODELBUS_API_KEY with a base_url); without base_url, the "
        "key of the provider the model id names.",
    )
    base_url: str | None = Field(
        default=None, description="A modelbus gateway's OpenAI-compatible base URL (env MODELBUS_BASE_URL)."
    )
    providers: dict[str, dict[str, Any]] | None = Field(
        default=None, description="modelbus provider settings, e.g. {'deepseek': {'api_key': ...}}."
    )
    config: dict[str, Any] | str | None = Field(
        default=None, description="modelbus configuration (a dict in config.toml's shape, or a path)."
    )
    compat: str = Field(
        default="strict", description="'strict' raises on unsupported parameters; 'drop' drops them."
    )
    context_window: int | None = Field(default=None, description="Override the model table's context window.")
    is_function_calling: bool | None = Field(
        default=None, description="Override whether the model calls tools (default: from the model table)."
    )
    strict: bool = Field(default=False, description="Ask for schema-exact tool arguments (strict mode).")

    _connection: Connection = PrivateAttr()

    def __init__(
        self,
        model: str,
        *,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        base_url, api_key = endpoint_from_env(kwargs.pop("base_url", None), kwargs.pop("api_key", None))
        super().__init__(model=model, base_url=base_url, api_key=api_key, **kwargs)
        self._connection = Connection(
            model=model,
            base_url=base_url,
            api_key=api_key,
            providers=self.providers,
            config=self.config,
            max_retries=self.max_retries,
            timeout=self.timeout,
            compat=self.compat,
            client=client,
            async_client=async_client,
        )

    @classmethod
    def class_name(cls) -> str:
        return "ModelBus"

    @field_serializer("providers")
    def _providers_without_keys(
        self, value: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        # keys stay out of to_dict()/to_json(): modelbus reads them from the provider's env var or config
        return providers_without_keys(value)

    # -- modelbus ------------------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def modelbus_client(self) -> Client:
        return self._connection.client

    @property
    def modelbus_async_client(self) -> AsyncClient:
        return self._connection.async_client

    def model_info(self) -> ModelInfo | None:
        """This model's modelbus table row (``Client.resolve``), ``None`` when unknown here."""
        return self._connection.model_info()

    def close(self) -> None:
        self._connection.close()

    async def aclose(self) -> None:
        await self._connection.aclose()

    @property
    def metadata(self) -> LLMMetadata:
        info = self.model_info()
        context_window = self.context_window or (info.context_window if info else DEFAULT_CONTEXT_WINDOW)
        function_calling = self.is_function_calling
        if function_calling is None:
            function_calling = info.supports("tools") if info is not None else True
        return LLMMetadata(
            context_window=context_window,
            num_output=self.max_tokens or -1,
            is_chat_model=True,
            is_function_calling_model=function_calling,
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    # -- requests ------------------------------------------------------------------------------------

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        defaults = {name: getattr(self, name) for name in ("temperature", "max_tokens", "reasoning_effort")}
        target, params = self._connection.chat_params(defaults, {**self.additional_kwargs, **kwargs})
        params["messages"] = [_message_to_modelbus(m) for m in messages]
        return target, params

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        model, params = self._request(messages, kwargs)
        response = self._connection.client.chat(model, **params)
        return _chat_response(response)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        model, params = self._request(messages, kwargs)
        response = await self._connection.async_client.chat(model, **params)
        return _chat_response(response)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        model, params = self._request(messages, kwargs)
        stream = self._connection.client.chat(model, stream=True, **params)

        def gen() -> ChatResponseGen:
            state = _StreamState()
            with stream:
                for chunk in stream:
                    update = state.add(chunk)
                    if update is not None:
                        yield update
            yield state.final(stream.response)

        return gen()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        model, params = self._request(messages, kwargs)
        stream = await self._connection.async_client.chat(model, stream=True, **params)

        async def gen() -> ChatResponseAsyncGen:
            state = _StreamState()
            async with stream:
                async for chunk in stream:
                    update = state.add(chunk)
                    if update is not None:
                        yield update
            yield state.final(stream.response)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # -- tools ---------------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        strict = self.strict if strict is None else strict
        specs = [_tool_spec(tool, strict=strict) for tool in tools]
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            names = [spec["function"]["name"] for spec in specs]
            if tool_choice is not None:
                prepared["tool_choice"] = request_tool_choice(tool_choice, names)
            elif tool_required:
                prepared["tool_choice"] = "required"
            else:
                prepared["tool_choice"] = "auto"
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:  # keep the first call, as the OpenAI integration does
            seen = False
            blocks = []
            for block in response.message.blocks:
                if isinstance(block, ToolCallBlock):
                    if seen:
                        continue
                    seen = True
                blocks.append(block)
            response.message.blocks = blocks
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [block for block in response.message.blocks if isinstance(block, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError(f"Expected at least one tool call, but got {len(calls)} tool calls.")
        selections = []
        for call in calls:
            arguments = call.tool_kwargs
            if isinstance(arguments, str):
                try:
                    arguments = parse_partial_json(arguments) if arguments.strip() else {}
                except (ValueError, TypeError):
                    arguments = {}
            selections.append(
                ToolSelection(
                    tool_id=call.tool_call_id or "",
                    tool_name=call.tool_name,
                    tool_kwargs=arguments if isinstance(arguments, dict) else {},
                )
            )
        return selections


# -- conversion: LlamaIndex -> modelbus ------------------------------------------------------------------


def _tool_spec(tool: BaseTool, *, strict: bool) -> dict[str, Any]:
    spec = tool.metadata.to_openai_tool(skip_length_check=True)
    if strict:
        spec["function"]["strict"] = True
        spec["function"]["parameters"].setdefault("additionalProperties", False)
    return spec


def _image_part(block: ImageBlock) -> dict[str, Any]:
    detail = {"detail": block.detail} if block.detail in ("auto", "low", "high") else {}
    if block.url is not None and block.image is None:
        return {"type": "image_url", "image_url": {"url": str(block.url), **detail}}
    data = block.resolve_image(as_base64=True).read()
    mime = block.image_mimetype or "image/png"
    encoded = data.decode("ascii") if isinstance(data, bytes) else base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}", **detail}}


def _legacy_tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    """OpenAI-style ``additional_kwargs["tool_calls"]`` (dicts or SDK objects) from other integrations."""
    calls = []
    for position, call in enumerate(message.additional_kwargs.get("tool_calls") or ()):
        data = call if isinstance(call, dict) else (call.model_dump() if hasattr(call, "model_dump") else {})
        function = data.get("function") or {}
        arguments = function.get("arguments")
        calls.append(
            {
                "id": data.get("id") or f"call_{position}",
                "type": "function",
                "function": {
                    "name": function.get("name") or "",
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                },
            }
        )
    return calls


def _message_to_modelbus(message: ChatMessage) -> dict[str, Any]:
    role = _ROLES.get(message.role)
    if role is None:
        raise ValueError(f"unsupported message role {message.role!r}")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image_part(block))
        elif isinstance(block, ToolCallBlock):
            arguments = block.tool_kwargs
            calls.append(
                {
                    "id": block.tool_call_id or f"call_{len(calls)}",
                    "type": "function",
                    "function": {
                        "name": block.tool_name,
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments, ensure_ascii=False),
                    },
                }
            )
        elif isinstance(block, ThinkingBlock):
            if block.content:
                reasoning.append(block.content)
        elif isinstance(block, CachePoint):
            continue  # a prompt-caching hint: modelbus providers cache on their own
        else:
            raise ValueError(
                f"modelbus does not support {block.block_type!r} blocks (text, images, tool calls, thinking)"
            )
    text = "".join(texts)
    out: dict[str, Any] = {"role": role}
    if role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if not call_id:
            raise ValueError("a tool message needs additional_kwargs['tool_call_id']")
        out.update(tool_call_id=call_id, content=text)
        return out
    if role == "assistant":
        calls = calls or _legacy_tool_calls(message)
        out["content"] = text if text or not calls else None
        if calls:
            out["tool_calls"] = calls
        thought = "".join(reasoning) or message.additional_kwargs.get("reasoning_content")
        if thought:
            out["reasoning_content"] = thought
        return out
    if role == "user" and images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts if t]
        out["content"] = [*parts, *images]
    elif images:
        raise ValueError(f"images are only supported in user messages, not in {role} messages")
    else:
        out["content"] = text
    return out


# -- conversion: modelbus -> LlamaIndex ------------------------------------------------------------------


def usage_kwargs(response: ModelbusResponse | None) -> dict[str, Any]:
    """Usage, cost and provider of a modelbus response, flat (``ChatResponse.additional_kwargs``)."""
    if response is None:
        return {}
    out: dict[str, Any] = {"model": response.model, "provider": response.provider}
    usage: Usage | None = response.usage
    if usage is not None:
        out.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
    if response.cost is not None:
        out["cost"] = float(response.cost)
    if response.choices:
        out["finish_reason"] = response.choices[0].finish_reason
    if response.route is not None:
        out["route"] = response.route.summary()
    return out


def _blocks(
    content: str | None, reasoning: str | None, calls: list[tuple[str | None, str, str]]
) -> list[Any]:
    blocks: list[Any] = []
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    if content or not calls:
        blocks.append(TextBlock(text=content or ""))
    for call_id, name, arguments in calls:
        try:
            parsed: dict[str, Any] | str = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            parsed = arguments
        blocks.append(ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=parsed))
    return blocks


def _assistant_message(message: ResponseMessage | None) -> ChatMessage:
    if message is None:
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=_blocks("", None, []))
    calls = [(call.id, call.function.name, call.function.arguments) for call in message.tool_calls or ()]
    return ChatMessage(
        role=MessageRole.ASSISTANT, blocks=_blocks(message.content, message.reasoning_content, calls)
    )


def _chat_response(response: ModelbusResponse) -> ChatResponse:
    return ChatResponse(
        message=_assistant_message(response.choices[0].message),
        raw=response,
        additional_kwargs=usage_kwargs(response),
    )


class _StreamState:
    """The growing assistant message LlamaIndex expects from a stream, folded by modelbus's own
    :class:`~modelbus.types.ChunkAccumulator` (choice 0 only: LlamaIndex streams one message)."""

    def __init__(self) -> None:
        self._acc = ChunkAccumulator()

    def message(self) -> ChatMessage:
        first = next((choice.message for choice in self._acc.response().choices if choice.index == 0), None)
        return _assistant_message(first)

    def add(self, chunk: ChatChunk) -> ChatResponse | None:
        self._acc.add(chunk)
        deltas = [choice.delta for choice in chunk.choices if choice.index == 0]
        if not any(delta.content or delta.reasoning_content or delta.tool_calls for delta in deltas):
            return None
        thinking = "".join(delta.reasoning_content or "" for delta in deltas)
        extra = {"thinking_delta": thinking} if thinking else {}
        delta_text = "".join(delta.content or "" for delta in deltas)
        return ChatResponse(message=self.message(), delta=delta_text, raw=chunk, additional_kwargs=extra)

    def final(self, response: ModelbusResponse | None) -> ChatResponse:
        """The closing response: the whole message, with usage, cost and the accumulated raw response."""
        return ChatResponse(
            message=self.message(), delta="", raw=response, additional_kwargs=usage_kwargs(response)
        )
