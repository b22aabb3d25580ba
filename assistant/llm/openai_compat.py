"""The ``openai`` backend: any server that speaks OpenAI's ``/v1/chat/completions``.

That covers hosted APIs and local servers alike (Ollama, vLLM, LM Studio, llama.cpp's server), so one
backend with three settings (``ATELIER_LLM_BASE_URL``, ``_MODEL``, ``_API_KEY``) replaces a backend per
vendor. Replies stream over SSE and are grounded sentence by sentence; tool calling is available both
through LangChain (:meth:`OpenAIBackend.chat_model`) and as one plain request (:meth:`OpenAIBackend.complete`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import openai

from atelier.assistant.grounding import GroundedStream
from atelier.assistant.llm.base import AssistantTurn, LLMError, ReplyContext, ToolCall
from atelier.assistant.llm.prompts import build_messages
from atelier.tools.settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0


def redact(text: str, settings: Settings) -> str:
    """``text`` with the API key masked: upstream error bodies sometimes quote the key they rejected."""
    key = settings.llm_api_key.get_secret_value()
    return text.replace(key, "**********") if len(key) >= 4 else text


def to_llm_error(exc: BaseException, settings: Settings) -> LLMError:
    """A clear, actionable :class:`LLMError` for an ``openai`` client exception (also raised by LangChain)."""
    where = settings.llm_base_url
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"the LLM endpoint at {where} timed out", backend="openai")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return LLMError(f"cannot reach the LLM endpoint at {where} ({type(cause).__name__}: "
                        f"{redact(str(cause), settings)}); is the "
                        "server running? Set ATELIER_LLM_BASE_URL, or ATELIER_LLM=none for template replies",
                        backend="openai")
    if isinstance(exc, openai.AuthenticationError):
        return LLMError(f"the LLM endpoint at {where} rejected the API key (ATELIER_LLM_API_KEY)",
                        backend="openai", status_code=exc.status_code)
    if isinstance(exc, openai.NotFoundError):
        return LLMError(f"the LLM endpoint at {where} has no model {settings.llm_model!r} or no "
                        "/chat/completions route (check ATELIER_LLM_MODEL, and that the URL ends in /v1)",
                        backend="openai", status_code=exc.status_code)
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the LLM endpoint at {where} answered HTTP {exc.status_code}: "
                        f"{redact(exc.message, settings)}",
                        backend="openai", status_code=exc.status_code)
    return LLMError(f"the LLM endpoint at {where} failed: {type(exc).__name__}: "
                    f"{redact(str(exc), settings)}", backend="openai")


class OpenAIBackend:
    """Chat completions against ``settings.llm_base_url``; no retries, so a dead server fails in seconds."""

    name = "openai"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._client: openai.OpenAI | None = None

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.settings.llm_base_url, api_key=self.api_key,
                max_retries=0, timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        return self._client

    @property
    def api_key(self) -> str:
        """The key in the clear: read here only, so nothing else can print or log it."""
        return self.settings.llm_api_key.get_secret_value() or "not-needed"

    def stream_reply(self, system: str, messages: list[dict[str, Any]], context: ReplyContext) -> GroundedStream:
        """The reply as grounded chunks; raises :class:`LLMError` on the first ``next()`` when unreachable."""
        return context.ground(self.stream_text(build_messages(system, messages, context)))

    def stream_text(self, messages: list[dict[str, Any]]) -> Iterator[str]:
        """Raw streamed content for ready-made OpenAI ``messages`` (no context, no grounding)."""
        try:
            stream = self.client.chat.completions.create(
                model=self.settings.llm_model, messages=messages, stream=True,
                max_tokens=self.settings.llm_max_tokens)
            with stream:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise to_llm_error(exc, self.settings) from exc

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> AssistantTurn:
        """One non-streamed completion; with ``tools`` (OpenAI function specs) it may return tool calls."""
        kwargs: dict[str, Any] = {"tools": tools} if tools else {}
        try:
            response = self.client.chat.completions.create(
                model=self.settings.llm_model, messages=messages, max_tokens=self.settings.llm_max_tokens, **kwargs)
        except openai.OpenAIError as exc:
            raise to_llm_error(exc, self.settings) from exc
        if not response.choices:
            raise LLMError(f"the LLM endpoint at {self.settings.llm_base_url} returned no choices", backend="openai")
        message = response.choices[0].message
        calls = []
        for call in message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            try:
                arguments = json.loads(function.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise LLMError(f"tool call {function.name!r} has malformed JSON arguments: {exc}",
                               backend="openai") from exc
            calls.append(ToolCall(id=call.id, name=function.name, arguments=arguments))
        return AssistantTurn(text=message.content or "", tool_calls=calls)

    def chat_model(self) -> "ChatOpenAI":
        """A LangChain ``ChatOpenAI`` on the same endpoint, for ``bind_tools`` / ``create_agent``.

        Its errors are ``openai`` exceptions; :func:`to_llm_error` turns them into :class:`LLMError`.
        """
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(base_url=self.settings.llm_base_url, api_key=self.api_key,
                          model=self.settings.llm_model, max_tokens=self.settings.llm_max_tokens, max_retries=0,
                          timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
