"""What the user interfaces need from the assistant, and the one place they get it from.

The API and the Streamlit app talk to this protocol, not to ``assistant.agent`` internals, so a fake
with the same methods can stand in and an agent refactor touches one module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from PIL import Image

from atelier.assistant.events import Event
from atelier.tools.errors import InputError

if TYPE_CHECKING:
    from atelier.assistant.runtime import Runtime
    from atelier.memory.store import SessionStore
    from atelier.tools.settings import Settings
    from atelier.ui.chat_state import Chip, Transcript



@runtime_checkable
class AssistantLike(Protocol):
    def new_session(self) -> str: ...

    def turn(self, session_id: str, message: str, image: Image.Image | None = None) -> Iterator[Event]: ...

    def feedback(self, session_id: str, product_id: str, kind: str) -> Any: ...

    def history(self, session_id: str) -> list[dict[str, Any]]: ...

    def memory(self, session_id: str) -> dict[str, Any]: ...

    def forget(self, session_id: str, kind: str, facet: str | None = None, value: Any = None) -> dict[str, Any]: ...

    def focus(self, session_id: str, product_id: str) -> dict[str, Any]: ...


@dataclass
class SessionView:
    """A session as the interfaces show it: past messages and the memory panel's contents."""

    history: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)


def session_view(assistant: AssistantLike, session_id: str) -> SessionView:
    return SessionView(history=list(assistant.history(session_id)), memory=dict(assistant.memory(session_id)))


def build_assistant(settings: "Settings | None" = None, runtime: "Runtime | None" = None) -> AssistantLike:
    """The real assistant over ``runtime`` (default: a new one for ``settings``, else the active settings)."""
    from atelier.assistant.turn import Assistant

    return Assistant(settings, runtime=runtime)


def sessions_db() -> "SessionStore":
    from atelier.memory.store import SessionStore
    from atelier.tools.settings import get_settings

    return SessionStore(get_settings().db_url)


def delete_session(assistant: AssistantLike, settings: "Settings", session_id: str) -> None:
    """Erase a session (memory and turn log): the assistant's own ``delete_session`` when it has one,
    else the sessions database the settings name."""
    delete = getattr(assistant, "delete_session", None)
    if callable(delete):
        delete(session_id)
        return
    from atelier.memory.store import SessionStore

    SessionStore(settings.db_url).delete(session_id)


def give_feedback(assistant: AssistantLike, session_id: str, product_id: str, kind: str) -> SessionView:
    assistant.feedback(session_id, product_id, kind)
    return session_view(assistant, session_id)


def forget(assistant: AssistantLike, session_id: str, chip: "Chip") -> dict[str, Any]:
    """Remove one memory chip (``Assistant.forget``: persisted and logged); returns the memory as the panel
    shows it."""
    assistant.forget(session_id, chip.kind, chip.facet, chip.value)
    return session_view(assistant, session_id).memory


def act(assistant: AssistantLike, session_id: str, action: str, *, text: str = "", product_id: str | None = None,
        image: Image.Image | None = None) -> Iterator[Event]:
    """The events of one chat action: a message, or a card's more-like-this / complete-the-look / ask.

    Card actions point the conversation at their product first (the memory's ``focus``), so the agent's
    own "this" resolution picks it up whichever message the card was shown in.
    """
    if action == "message":
        return assistant.turn(session_id, text, image=image)
    if product_id is None:
        raise InputError(f"{action} needs a product")
    if action == "more_like_this":
        return _lazy(lambda: assistant.feedback(session_id, product_id, "more_like_this"))
    if action == "complete_look":
        return _focused(assistant, session_id, product_id, "Complete the look with this")
    if action == "ask":
        return _focused(assistant, session_id, product_id, about_this(assistant, text))
    raise InputError(f"unknown action {action!r}")


def about_this(assistant: AssistantLike, question: str) -> str:
    """The question, worded so the agent's parser reads it as a question about the product in focus."""
    question = question.strip()
    candidates = [question, f"{question.rstrip('?')} (about this one)?", f"About this one: {question}"]
    parser = getattr(assistant, "parser", None)
    if parser is None:
        return candidates[1]
    from atelier.assistant.parser import ParseContext

    context = ParseContext(has_results=True, n_shown=1, has_reference=True)
    for candidate in candidates:
        if parser.parse(candidate, context).intent == "question":
            return candidate
    return candidates[1]


def focus(assistant: AssistantLike, session_id: str, product_id: str) -> None:
    """Point the session at one product, as if the shopper had just referred to it (``Assistant.focus``)."""
    assistant.focus(session_id, product_id)


def _focused(assistant: AssistantLike, session_id: str, product_id: str, message: str) -> Iterator[Event]:
    focus(assistant, session_id, product_id)
    yield from assistant.turn(session_id, message)


def _lazy(produce: Callable[[], Iterable[Event]]) -> Iterator[Event]:
    yield from produce()


def recent_sessions(assistant: AssistantLike, limit: int = 10) -> list[dict[str, Any]]:
    """Recent sessions with a title (their first message), newest first."""
    store = sessions_db()
    out = []
    for item in store.sessions(limit):
        turns = [t for t in store.turns(item["id"]) if t.kind == "message"]
        if turns:
            first = turns[0].message or "(photo)"
            out.append({**item, "title": first if len(first) <= 40 else first[:39] + "…"})
    return out


def load_transcript(assistant: AssistantLike, session_id: str, runtime: "Runtime") -> "Transcript":
    """A past session as the chat shows it; its product cards come from ``runtime``'s catalog."""
    from atelier.ui.chat_state import transcript_from_turns

    view = session_view(assistant, session_id)
    return transcript_from_turns(session_id, view.history, runtime.search.store.get, view.memory)
