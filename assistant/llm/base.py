"""What every reply backend gets and gives: the turn's context in, text chunks out.

The agent decides *what* to show (products, memory); a backend only words it. Keeping the context
as one typed object lets a backend ground its words in exactly the products the shopper sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from atelier.assistant.grounding import GroundedStream
from atelier.tools.errors import UnavailableError
from atelier.tools.schema import SearchResult

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class LLMError(UnavailableError):
    """A backend could not produce a reply (endpoint down, bad model name, missing weights).

    ``message`` is safe to log and clear enough to act on; the agent falls back to the template reply.
    """

    code = "llm_unavailable"

    def __init__(self, message: str, *, backend: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.status_code = status_code


class ReplyContext(BaseModel):
    """Everything a backend may say something about in this turn, and nothing else.

    ``results`` are the products shown as cards, ``facts`` are tool-produced statements (VQA answers,
    outfit notes) and ``template_reply`` is the deterministic reply the agent would give without an LLM.
    """

    intent: str = "search"
    results: list[SearchResult] = Field(default_factory=list)
    memory: dict[str, Any] = Field(default_factory=dict)
    template_reply: str = ""
    user_message: str = ""
    facts: list[str] = Field(default_factory=list)
    unmatched: list[str] = Field(default_factory=list, description="request terms no shown result satisfies")

    def ground(self, chunks: Iterable[str]) -> GroundedStream:
        """``chunks`` grounded in this turn: ids and prices need a result or fact behind them, budgets may
        echo the shopper, a sentence may not claim an unmatched request term, and the template reply stands
        in when nothing survives."""
        budgets = [self.user_message, json.dumps(self.memory, default=str) if self.memory else ""]
        return GroundedStream(chunks, self.results, [*self.facts, self.template_reply], user_text=budgets,
                              fallback=self.template_reply, unmatched=self.unmatched)


class ToolCall(BaseModel):
    """One function call the model asked for; ``arguments`` already parsed from its JSON."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AssistantTurn(BaseModel):
    """A non-streamed completion: its text and the tool calls it asked for (either may be empty)."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


@runtime_checkable
class ChatBackend(Protocol):
    """A reply backend, built by name from the registry in :mod:`assistant.llm`."""

    name: str

    def stream_reply(self, system: str, messages: list[dict[str, Any]], context: ReplyContext) -> Iterator[str]:
        """The reply in chunks. ``messages`` is the OpenAI-style history, newest last.

        Model backends return a :class:`GroundedStream` (its ``report()`` lists what grounding cut).
        Raises :class:`LLMError`, at the latest on the first ``next()``, when the backend is unreachable.
        """
        ...

    def chat_model(self) -> "BaseChatModel | None":
        """A LangChain chat model that supports ``bind_tools``, or ``None`` when tool calling is unsupported."""
        ...
