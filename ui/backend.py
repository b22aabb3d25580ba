"""What the user interfaces need from the assistant, and the one place they get it from.

The API and the Streamlit app talk to this protocol, not to ``assistant.agent`` internals, so a fake
with the same methods can stand in and an agent refactor touches one module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from assistant.events import Event

FEEDBACK_KINDS = ("like", "dislike", "more_like_this")


@runtime_checkable
class AssistantLike(Protocol):
    def new_session(self) -> str: ...

    def turn(self, session_id: str, message: str, image: Image.Image | None = None) -> Iterator[Event]: ...

    def feedback(self, session_id: str, product_id: str, kind: str) -> Any: ...

    def history(self, session_id: str) -> list[dict[str, Any]]: ...

    def memory(self, session_id: str) -> dict[str, Any]: ...


@dataclass
class SessionView:
    """A session as the interfaces show it: past messages and the memory panel's contents."""

    history: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)


def session_view(assistant: AssistantLike, session_id: str) -> SessionView:
    return SessionView(history=list(assistant.history(session_id)), memory=dict(assistant.memory(session_id)))


def build_assistant() -> AssistantLike:
    """The real assistant for the active settings (loads the encoder and opens the store)."""
    from assistant.agent import Assistant

    return Assistant()
