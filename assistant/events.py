"""The typed events of one assistant turn: the one stream the CLI, the HTTP API (as SSE) and the
Streamlit app all consume.

Order within a turn: ``status`` / ``tool_call`` (any number) → ``products`` (0..n) → ``text_delta``
(0..n) → ``memory`` → ``done``; or an ``error`` followed by ``done``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

from atelier.tools.errors import AtelierError
from atelier.tools.relevance import Honesty
from atelier.tools.schema import SearchResult


class StatusEvent(BaseModel):
    type: Literal["status"] = "status"
    message: str


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ProductsEvent(BaseModel):
    """Products to show as cards; ``slot`` names the outfit slot for outfit completion. ``honesty`` (searches)
    says whether they match the request or are only the closest items, and which request terms none has."""

    type: Literal["products"] = "products"
    results: list[SearchResult]
    slot: str | None = None
    title: str | None = None
    honesty: Honesty | None = None


class TextDeltaEvent(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class MemoryEvent(BaseModel):
    """The session memory after this turn, as the JSON the shopper can inspect."""

    type: Literal["memory"] = "memory"
    memory: dict[str, Any]


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    session_id: str
    reply: str = ""
    turn: int = 0


class ErrorEvent(BaseModel):
    """Something failed; ``message`` is safe and clear enough to show to a shopper, ``code`` is the
    ``AtelierError`` code (``internal`` for a bug), the same vocabulary as the API's JSON errors."""

    type: Literal["error"] = "error"
    message: str
    code: str = "internal"


def error_event(exc: BaseException) -> ErrorEvent:
    """The shopper-safe event for a failure: an ``AtelierError``'s code and public message, else ``internal``
    (the exception's own text, which may name files, belongs in the log only)."""
    if isinstance(exc, AtelierError):
        return ErrorEvent(message=exc.public_message, code=exc.code)
    return ErrorEvent(message=AtelierError.public_message, code=AtelierError.code)


Event = Annotated[Union[StatusEvent, ToolCallEvent, ProductsEvent, TextDeltaEvent, MemoryEvent, DoneEvent,
                        ErrorEvent], Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_payload(event: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of an event (what the API sends as SSE ``data:``)."""
    return event.model_dump(mode="json")
