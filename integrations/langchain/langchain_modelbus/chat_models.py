"""``ChatModelBus``: a LangChain chat model on top of modelbus."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
    make_invalid_tool_call,
    parse_tool_call,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from modelbus.connection import GATEWAY, Connection, request_tool_choice

if TYPE_CHECKING:
    from langchain_core.language_models.model_profile import ModelProfile

    from modelbus import AsyncClient, Client
    from modelbus.types import ChatChunk, ChatResponse, ModelInfo, Usage

__all__ = ["ChatModelBus"]

_SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "n", "presence_penalty", "frequency_penalty")
StructuredMethod = Literal["function_calling", "json_mode", "json_schema"]
_CONNECTION_LOCK = threading.Lock()


class ChatModelBus(BaseChatModel):
    """A chat model served by modelbus: every installed provider behind one interface, or a gateway.

    Setup:
        ``pip install langchain-modelbus modelbus-deepseek`` and a provider key (``DEEPSEEK_API_KEY``,
        or ``[providers.deepseek] api_key`` in modelbus's ``config.toml``). To go through a modelbus
        gateway instead, give its ``base_url`` and a virtual key (``MODELBUS_BASE_URL`` /
        ``MODELBUS_API_KEY``); the model id is then sent to the gateway unchanged.

    Key init args:
        model: a modelbus model id, ``provider/model`` (``"deepseek/deepseek-chat"``) or an alias.
        temperature, max_tokens, top_p, seed, stop, reasoning_effort: sampling parameters.
        timeout: seconds per call, retries included. max_retries: retries per attempt on retryable
            errors.
        base_url, api_key: a modelbus gateway (OpenAI-compatible, e.g. ``http://localhost:4000/v1``)
            and its virtual key. Without ``base_url``, an ``api_key`` given here is the key of the
            provider the model id names.
        providers, config: modelbus provider settings and configuration (see ``modelbus.Client``).

    Instantiate:
        .. code-block:: python

            from langchain_modelbus import ChatModelBus

            llm = ChatModelBus(model="deepseek/deepseek-chat", temperature=0)
            gateway_llm = ChatModelBus(
                model="deepseek/deepseek-chat", base_url="http://localhost:4000/v1", api_key="mb-..."
            )

    Invoke, stream, tools, structured output:
        .. code-block:: python

            llm.invoke("Hello").content
            for chunk in llm.stream("Hello"):
                print(chunk.text, end="")
            llm.bind_tools([get_weather]).invoke("Weather in Paris?").tool_calls
            llm.with_structured_output(Joke).invoke("Tell me a joke about cats")

    Response metadata:
        ``usage_metadata`` has input/output/total tokens with ``input_token_details.cache_read`` /
        ``cache_creation`` and ``output_token_details.reasoning``. ``response_metadata`` has
        ``model_name`` (``provider/model`` as the upstream reported it), ``model_provider``
        (``"modelbus"``), ``provider``, ``finish_reason``, ``native_finish_reason``, ``cost`` (USD, a
        float; ``cost_breakdown`` for the details) and ``route`` (how modelbus routed the call).
    """

    model: str = Field(alias="model_name")
    """A modelbus model id (``provider/model``) or alias."""
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, alias="max_completion_tokens")
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: str | None = None
    """``none``/``minimal``/``low``/``medium``/``high``/``xhigh``/``max``, for reasoning models."""
    n: int | None = None
    stop: list[str] | str | None = Field(default=None, alias="stop_sequences")
    timeout: float | None = Field(default=None, alias="request_timeout")
    """Seconds per call, retries included (modelbus's default otherwise)."""
    max_retries: int | None = None
    """Retries on retryable errors (modelbus's default, 2, otherwise)."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env("MODELBUS_API_KEY", default=None))
    """The gateway's virtual key (env ``MODELBUS_API_KEY``); without ``base_url``, a key given in code
    is the key of the provider the model id names (the env var is then not used)."""
    base_url: str | None = Field(
        default_factory=from_env("MODELBUS_BASE_URL", default=None), alias="api_base"
    )
    """A modelbus gateway's OpenAI-compatible base URL (env ``MODELBUS_BASE_URL``)."""
    streaming: bool = False
    """Call the streaming API for ``invoke`` too."""
    stream_usage: bool = True
    """Put the usage on the last chunk of a stream (modelbus always ends a stream with it)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra request fields sent with every call (``ChatRequest`` fields or provider-only ones)."""
    extra_body: dict[str, Any] | None = None
    """Provider-only parameters merged into the upstream body (modelbus ``extra``)."""
    providers: dict[str, dict[str, Any]] | None = None
    """modelbus provider settings, e.g. ``{"deepseek": {"api_key": ..., "region": ...}}``."""
    config: dict[str, Any] | str | None = None
    """modelbus configuration: a dict in ``config.toml``'s shape or a path (default: the usual file)."""
    compat: Literal["strict", "drop"] = "strict"
    """``"strict"`` raises on parameters the model lacks; ``"drop"`` drops them."""
    client: Any = Field(default=None, exclude=True)
    """A ``modelbus.Client`` to use instead of building one."""
    async_client: Any = Field(default=None, exclude=True)
    """A ``modelbus.AsyncClient`` to use instead of building one."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _connection: Connection | None = None

    @field_validator("providers")
    @classmethod
    def _drop_secret_references(
        cls, value: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        # dumpd() writes provider keys as references to their env vars (lc_secrets); a revived one
        # is left out so that modelbus reads that env var (DEEPSEEK_API_KEY ...) itself
        if not value:
            return value
        return {
            name: {k: v for k, v in settings.items() if not (k == "api_key" and isinstance(v, dict))}
            for name, settings in value.items()
        }

    # -- LangChain plumbing ------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "modelbus-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_modelbus", "chat_models"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        secrets = {"api_key": "MODELBUS_API_KEY"}
        for name in self.providers or {}:
            secrets[f"providers.{name}.api_key"] = f"{name.upper().replace('-', '_')}_API_KEY"
        return secrets

    @property
    def lc_attributes(self) -> dict[str, Any]:
        return {"base_url": self.base_url} if self.base_url else {}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            **{
                name: getattr(self, name)
                for name in (*_SAMPLING, "reasoning_effort", "stop")
                if getattr(self, name)
            },
            **self.model_kwargs,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="modelbus",
            ls_model_name=kwargs.get("model", self.model),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or self.stop
        if stop:
            params["ls_stop"] = [stop] if isinstance(stop, str) else list(stop)
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        # runs in a validator, at construction: a throwaway connection, not self.connection, so that a
        # model stays copyable (deepcopy, pickle, model_copy(update=...)) until its first call
        info = self._new_connection().model_info()
        if info is None or info.kind != "chat":
            return None
        profile: dict[str, Any] = {
            "max_input_tokens": info.context_window,
            "text_inputs": True,
            "image_inputs": info.supports("vision"),
            "image_url_inputs": info.supports("vision"),
            "tool_calling": info.supports("tools"),
            "tool_choice": info.supports("tools"),
            "structured_output": info.supports("json_schema"),
            "reasoning_output": info.supports("reasoning"),
        }
        if info.max_output_tokens:
            profile["max_output_tokens"] = info.max_output_tokens
        return profile  # type: ignore[return-value]

    # -- modelbus clients ----------------------------------------------------------------------------

    def _new_connection(self) -> Connection:
        explicit_key = "api_key" in self.model_fields_set or bool(self.base_url)
        return Connection(
            model=self.model,
            base_url=self.base_url,
            api_key=self.api_key.get_secret_value() if self.api_key and explicit_key else None,
            providers=self.providers,
            config=self.config,
            max_retries=self.max_retries,
            timeout=self.timeout,
            compat=self.compat,
            client=self.client,
            async_client=self.async_client,
        )

    @property
    def connection(self) -> Connection:
        """How this model reaches modelbus (clients built on first use)."""
        if self._connection is None:
            with _CONNECTION_LOCK:  # batch() calls from a thread pool: build one connection, not several
                if self._connection is None:
                    self._connection = self._new_connection()
        return self._connection

    @property
    def modelbus_client(self) -> Client:
        """The ``modelbus.Client`` this model calls (built on first use)."""
        return self.connection.client

    @property
    def modelbus_async_client(self) -> AsyncClient:
        """The ``modelbus.AsyncClient`` this model calls (built on first use)."""
        return self.connection.async_client

    def model_info(self, model: str | None = None) -> ModelInfo | None:
        """The modelbus model table row of ``model`` (default: this model), if known here."""
        return self.connection.model_info(model)

    def close(self) -> None:
        """Close the sync client's connections (they are also closed when the model is collected)."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the async client's connections of the running event loop, and the sync ones."""
        await self.connection.aclose()

    # -- requests ------------------------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """(modelbus model id, ``chat()`` keyword arguments)."""
        defaults = {name: getattr(self, name) for name in _SAMPLING}
        defaults.update(reasoning_effort=self.reasoning_effort, stop=self.stop or None)
        call = {**self.model_kwargs, **kwargs}
        call.pop("ls_structured_output_format", None)
        extra_body = {**(self.extra_body or {}), **(call.pop("extra_body", None) or {})}
        if stop is not None:
            call["stop"] = stop
        target, params = self.connection.chat_params(defaults, call, extra=extra_body)
        if not params.get("stop"):
            params.pop("stop", None)
        params["messages"] = [_message_to_modelbus(m) for m in messages]
        return target, params

    def _result(self, response: ChatResponse, requested: str) -> ChatResult:
        generations = []
        for choice in response.choices:
            message = _ai_message(choice.message, response, choice.finish_reason, choice.native_finish_reason)
            message.response_metadata.update(self._metadata(response, requested))
            generations.append(
                ChatGeneration(
                    message=message,
                    generation_info={"finish_reason": choice.finish_reason},
                )
            )
        llm_output = {
            "model_name": self._model_name(response.model, response.provider, requested),
            "token_usage": response.usage.model_dump(mode="json") if response.usage else None,
            "system_fingerprint": response.system_fingerprint,
            "cost": float(response.cost) if response.cost is not None else None,
        }
        return ChatResult(
            generations=generations, llm_output={k: v for k, v in llm_output.items() if v is not None}
        )

    def _model_name(self, reported: str | None, provider: str | None, requested: str) -> str:
        """``provider/model`` as the upstream reported it (the gateway already speaks modelbus ids)."""
        reported = reported or requested.split("/", 1)[-1]
        if self.connection.gateway:
            if "/" in reported:
                return reported
            prefix = requested.partition("/")[0] if "/" in requested else None
            return f"{prefix}/{reported}" if prefix else reported
        return f"{provider}/{reported}" if provider else reported

    def _metadata(self, response: ChatResponse, requested: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "model_name": self._model_name(response.model, response.provider, requested),
            "model_provider": "modelbus",
            "provider": response.provider,
            "id": response.id,
            "system_fingerprint": response.system_fingerprint,
            "cost": float(response.cost) if response.cost is not None else None,
        }
        if response.cost_breakdown is not None:
            metadata["cost_breakdown"] = response.cost_breakdown.model_dump(mode="json", exclude_none=True)
        if response.route is not None:
            metadata["route"] = response.route.model_dump(mode="json", exclude_none=True)
        if response.usage is not None and response.usage.estimated:
            metadata["usage_estimated"] = True
        return {k: v for k, v in metadata.items() if v is not None}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, params = self._request(messages, stop, kwargs)
        response = self.connection.client.chat(model, **params)
        return self._result(response, _requested(model, self.connection))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, params = self._request(messages, stop, kwargs)
        response = await self.connection.async_client.chat(model, **params)
        return self._result(response, _requested(model, self.connection))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, params = self._request(messages, stop, kwargs)
        stream = self.connection.client.chat(model, stream=True, **params)
        chunks = _ChunkConverter(self, _requested(model, self.connection))
        with stream:
            for chunk in stream:
                for generation in chunks.convert(chunk, stream.route):
                    if run_manager:
                        run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
        for generation in chunks.finish():
            yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, params = self._request(messages, stop, kwargs)
        stream = await self.connection.async_client.chat(model, stream=True, **params)
        chunks = _ChunkConverter(self, _requested(model, self.connection))
        async with stream:
            async for chunk in stream:
                for generation in chunks.convert(chunk, stream.route):
                    if run_manager:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
        for generation in chunks.finish():
            yield generation

    # -- tools and structured output -----------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models, TypedDicts or OpenAI tool dicts).

        Args:
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (some tool), a tool
                name, or an OpenAI ``{"type": "function", "function": {"name": ...}}``.
            strict: ask for schema-exact arguments (OpenAI strict mode) where the provider has it.
            parallel_tool_calls: allow several calls in one reply (where the model supports it).
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, names)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: StructuredMethod | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable that answers with data of ``schema`` (pydantic class, TypedDict or JSON schema).

        Args:
            method: ``"function_calling"`` (a forced tool call), ``"json_schema"`` (``response_format``
                with the schema) or ``"json_mode"`` (``response_format`` ``json_object``; the prompt
                must describe the keys). Default: ``"json_schema"`` when the model table says the
                model supports it, else ``"function_calling"``.
            include_raw: return ``{"raw", "parsed", "parsing_error"}`` instead of raising on bad output.
            strict: schema-exact output where the provider supports it.
        """
        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        if method is None:
            info = self.model_info()
            method = (
                "json_schema" if info is not None and info.supports("json_schema") else "function_calling"
            )
        if method not in ("function_calling", "json_mode", "json_schema"):
            raise ValueError(
                f"Unrecognized method {method!r}: use function_calling, json_mode or json_schema"
            )
        if schema is None and method != "json_mode":
            raise ValueError(f"schema must be given for method={method!r}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: OutputParserLike
        if method == "function_calling":
            assert schema is not None
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                strict=strict,
                ls_structured_output_format={
                    "kwargs": {"method": "function_calling", "strict": strict},
                    "schema": schema,
                },
            )
            if is_pydantic:
                parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method == "json_schema":
            assert schema is not None
            llm = self.bind(
                response_format=_response_format(schema, strict),
                ls_structured_output_format={
                    "kwargs": {"method": "json_schema", "strict": strict},
                    "schema": schema,
                },
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            traced = {"kwargs": {"method": "json_mode"}, "schema": schema} if schema is not None else None
            llm = self.bind(
                response_format={"type": "json_object"},
                **({"ls_structured_output_format": traced} if traced else {}),
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        if include_raw:
            parsed = RunnablePassthrough.assign(
                parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
            )
            fallback = RunnablePassthrough.assign(parsed=lambda _: None)
            return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")
        return llm | parser


# -- conversion: LangChain -> modelbus ------------------------------------------------------------------


def _requested(target: str, connection: Connection) -> str:
    """The model id the caller asked for: ``target`` without :meth:`Connection.target`'s gateway prefix."""
    return target.removeprefix(f"{GATEWAY}/") if connection.gateway else target


def _tool_choice(choice: dict[str, Any] | str | bool, names: list[str]) -> dict[str, Any] | str:
    return request_tool_choice(choice, names, among="the bound tools")


def _response_format(schema: dict[str, Any] | type, strict: bool | None) -> dict[str, Any]:
    if isinstance(schema, dict) and schema.get("type") == "json_schema" and "json_schema" in schema:
        return schema
    if isinstance(schema, dict) and "schema" in schema and "name" in schema:  # already {name, schema}
        return {
            "type": "json_schema",
            "json_schema": {**schema, **({"strict": strict} if strict is not None else {})},
        }
    function = convert_to_openai_tool(schema, strict=strict)["function"]
    json_schema: dict[str, Any] = {
        "name": _schema_name(function["name"]),
        "schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        json_schema["description"] = function["description"]
    if strict is not None:
        json_schema["strict"] = strict
    return {"type": "json_schema", "json_schema": json_schema}


def _schema_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "output"


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def _user_content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image_url":
            image = block["image_url"]
            parts.append(
                {"type": "image_url", "image_url": image if isinstance(image, dict) else {"url": image}}
            )
        elif kind == "image" and isinstance(block.get("source"), dict):  # Anthropic's image block
            source = block["source"]
            if source.get("type") == "url":
                parts.append({"type": "image_url", "image_url": {"url": source["url"]}})
            else:
                mime = source.get("media_type") or "image/png"
                parts.append(
                    {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{source['data']}"}}
                )
        elif kind == "image":
            url = block.get("url")
            data = block.get("base64") or block.get("data")
            if block.get("source_type") == "url" or (url and not data):
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif data:
                mime = block.get("mime_type") or "image/png"
                parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
            else:
                raise ValueError("an image content block needs a url or base64 data")
        else:
            raise ValueError(
                f"modelbus does not support {kind!r} content blocks in user messages (text and images only)"
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _message_to_modelbus(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message as a modelbus (OpenAI-shaped) message dict."""
    out: dict[str, Any]
    if isinstance(message, SystemMessage):
        role = "developer" if message.additional_kwargs.get("__openai_role__") == "developer" else "system"
        out = {"role": role, "content": _text(message.content)}
    elif isinstance(message, HumanMessage):
        out = {"role": "user", "content": _user_content(message.content)}
    elif isinstance(message, AIMessage):
        calls = [
            {
                "id": call.get("id") or f"call_{position}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"], ensure_ascii=False)},
            }
            for position, call in enumerate(message.tool_calls)
        ]
        calls += [
            {
                "id": call.get("id") or f"call_invalid_{position}",
                "type": "function",
                "function": {"name": call.get("name") or "", "arguments": call.get("args") or ""},
            }
            for position, call in enumerate(message.invalid_tool_calls)
        ]
        text = _text(message.content)
        out = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            out["tool_calls"] = calls
        for key in ("reasoning_content", "reasoning_signature"):
            if isinstance(message.additional_kwargs.get(key), str):
                out[key] = message.additional_kwargs[key]
        if "reasoning_content" not in out and isinstance(message.content, list):
            # v1 "reasoning" blocks, or Anthropic "thinking" blocks (with the signature a replay needs)
            blocks = [
                b
                for b in message.content
                if isinstance(b, dict) and b.get("type") in ("reasoning", "thinking")
            ]
            reasoning = "".join(b.get("reasoning") or b.get("thinking") or "" for b in blocks)
            signatures = [b["signature"] for b in blocks if isinstance(b.get("signature"), str)]
            if reasoning:
                out["reasoning_content"] = reasoning
            if signatures and "reasoning_signature" not in out:
                out["reasoning_signature"] = signatures[-1]
    elif isinstance(message, ToolMessage):
        out = {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": _tool_content(message.content),
        }
        if message.status == "error":
            out["is_error"] = True
    elif isinstance(message, ChatMessage):
        role = {"human": "user", "ai": "assistant"}.get(message.role, message.role)
        return _message_to_modelbus(
            {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}.get(role, HumanMessage)(
                content=message.content, name=message.name
            )
        )
    elif isinstance(message, FunctionMessage):
        raise ValueError("FunctionMessage (legacy function calling) is not supported: use ToolMessage")
    else:
        raise ValueError(f"unsupported message type {type(message).__name__}")
    if message.name and out["role"] in ("system", "developer", "user", "assistant"):
        out["name"] = message.name
    return out


def _tool_content(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    text = _text(content)
    if text or not content:
        return text
    return json.dumps(content, ensure_ascii=False, default=str)


# -- conversion: modelbus -> LangChain ------------------------------------------------------------------


def usage_metadata(usage: Usage) -> UsageMetadata:
    """modelbus usage as LangChain's ``UsageMetadata`` (cache and reasoning details included)."""
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        input_token_details=InputTokenDetails(
            cache_read=usage.cached_tokens, cache_creation=usage.cache_creation_tokens
        ),
        output_token_details=OutputTokenDetails(reasoning=usage.reasoning_tokens),
    )


def _ai_message(message: Any, response: ChatResponse, finish: str | None, native: str | None) -> AIMessage:
    tool_calls, invalid = [], []
    for call in message.tool_calls or ():
        raw = {
            "id": call.id,
            "function": {"name": call.function.name, "arguments": call.function.arguments or "{}"},
        }
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as exc:  # bad JSON in the arguments: keep it, as LangChain does
            invalid.append(make_invalid_tool_call(raw, str(exc)))
        else:
            if parsed:
                tool_calls.append(parsed)
    additional: dict[str, Any] = {}
    if message.reasoning_content:
        additional["reasoning_content"] = message.reasoning_content
    if message.reasoning_signature:
        additional["reasoning_signature"] = message.reasoning_signature
    if message.refusal:
        additional["refusal"] = message.refusal
    metadata: dict[str, Any] = {"finish_reason": finish}
    if native and native != finish:
        metadata["native_finish_reason"] = native
    return AIMessage(
        content=message.content or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        additional_kwargs=additional,
        response_metadata=metadata,
        usage_metadata=usage_metadata(response.usage) if response.usage else None,
        id=response.id,
    )


class _ChunkConverter:
    """modelbus stream chunks -> LangChain ``ChatGenerationChunk`` (metadata and usage on the last one)."""

    def __init__(self, model: ChatModelBus, requested: str) -> None:
        self.model = model
        self.requested = requested
        self.finish_reason: str | None = None
        self.native: str | None = None
        self.done = False
        self.id: str | None = None

    def convert(self, chunk: ChatChunk, route: Any) -> list[ChatGenerationChunk]:
        self.id = self.id or chunk.id
        out = []
        for choice in chunk.choices:
            if choice.index != 0:  # LangChain streams one generation
                continue
            delta = choice.delta
            if choice.finish_reason is not None:
                self.finish_reason, self.native = choice.finish_reason, choice.native_finish_reason
            additional: dict[str, Any] = {}
            if delta.reasoning_content:
                additional["reasoning_content"] = delta.reasoning_content
            if delta.reasoning_signature:
                additional["reasoning_signature"] = delta.reasoning_signature
            if delta.refusal:
                additional["refusal"] = delta.refusal
            calls = [
                tool_call_chunk(
                    name=call.function.name if call.function else None,
                    args=call.function.arguments if call.function else None,
                    id=call.id,
                    index=call.index,
                )
                for call in delta.tool_calls or ()
            ]
            if not (delta.content or additional or calls):
                continue
            message = AIMessageChunk(
                content=delta.content or "", additional_kwargs=additional, tool_call_chunks=calls, id=chunk.id
            )
            out.append(ChatGenerationChunk(message=message))
        if chunk.usage is not None or chunk.cost is not None:  # modelbus's closing usage chunk
            out.append(self._last(chunk, route))
        return out

    def _last(self, chunk: ChatChunk, route: Any) -> ChatGenerationChunk:
        self.done = True
        response = chunk.model_copy(update={"route": route})
        metadata: dict[str, Any] = {"finish_reason": self.finish_reason or "stop"}
        if self.native and self.native != self.finish_reason:
            metadata["native_finish_reason"] = self.native
        metadata.update(self.model._metadata(response, self.requested))  # type: ignore[arg-type]
        message = AIMessageChunk(
            content="",
            response_metadata=metadata,
            usage_metadata=usage_metadata(chunk.usage) if chunk.usage and self.model.stream_usage else None,
            chunk_position="last",
            id=self.id,
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": metadata["finish_reason"]}
        )

    def finish(self) -> list[ChatGenerationChunk]:
        """A closing chunk if the stream ended without modelbus's usage chunk (it always sends one)."""
        if self.done:
            return []
        self.done = True
        return [
            ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    response_metadata={
                        "finish_reason": self.finish_reason or "stop",
                        "model_provider": "modelbus",
                    },
                    chunk_position="last",
                    id=self.id,
                )
            )
        ]
