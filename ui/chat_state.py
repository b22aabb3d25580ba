"""The Streamlit app's state, as plain data and functions: a transcript built from agent events and
the memory panel's removable chips.

Nothing here imports Streamlit, so the logic is tested directly and the app module only draws.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from atelier.memory.state import SessionMemory
from atelier.tools.schema import Product, SearchResult

Role = Literal["user", "assistant"]
ChipKind = Literal["must", "avoid", "price_min", "price_max", "preference", "detail", "anchor"]


class ProductGroup(BaseModel):
    """One ``products`` event: a row of cards (``slot`` names the outfit slot when completing a look)."""

    results: list[SearchResult]
    title: str | None = None
    slot: str | None = None


class ChatMessage(BaseModel):
    role: Role
    text: str = ""
    image: bytes | None = None
    groups: list[ProductGroup] = Field(default_factory=list)
    status: str | None = None
    error: str | None = None

    def product_ids(self) -> list[str]:
        return [r.id for group in self.groups for r in group.results]


class Transcript(BaseModel):
    """What the chat shows for one session, and the memory the sidebar shows."""

    session_id: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list)
    memory: dict[str, Any] = Field(default_factory=dict)

    def add_user(self, text: str, image: bytes | None = None) -> ChatMessage:
        message = ChatMessage(role="user", text=text, image=image)
        self.messages.append(message)
        return message

    def add_assistant(self) -> ChatMessage:
        message = ChatMessage(role="assistant")
        self.messages.append(message)
        return message

    def latest_product_ids(self) -> list[str]:
        for message in reversed(self.messages):
            if message.groups:
                return message.product_ids()
        return []


def apply_event(transcript: Transcript, message: ChatMessage, event: Any) -> str | None:
    """Fold one agent event into ``message``; returns the text to stream, if the event carries any."""
    kind = getattr(event, "type", "")
    if kind == "status":
        message.status = event.message
    elif kind == "products":
        if event.results:
            message.groups.append(ProductGroup(results=list(event.results), title=event.title, slot=event.slot))
    elif kind == "text_delta":
        message.text += event.text
        message.status = None
        return event.text
    elif kind == "memory":
        transcript.memory = dict(event.memory)
    elif kind == "error":
        message.error = event.message
    elif kind == "done":
        message.status = None
        if event.reply and not message.text:
            message.text = event.reply
        if event.session_id:
            transcript.session_id = event.session_id
    return None


def run_turn(transcript: Transcript, message: ChatMessage, events: Iterable[Any],
             on_error: Callable[[Exception], str]) -> Iterable[str]:
    """Apply every event of a turn, yielding text deltas as they come (what ``st.write_stream`` reads).

    A crash inside the agent becomes ``message.error`` (worded by ``on_error``), never a traceback.
    """
    try:
        for event in events:
            delta = apply_event(transcript, message, event)
            if delta:
                yield delta
    except Exception as exc:  # the agent's failure must not take the page down
        message.error = on_error(exc)
    message.status = None


SCORE = re.compile(r"\b[01]\.\d\d\b")


def short_why(why: str) -> str:
    """The readable part of a result's ``why`` ("matches colour black, category dress"): the clauses
    that name facts rather than similarity scores."""
    clauses = [c.strip() for c in why.split(";") if c.strip()]
    facts = [c for c in clauses if not SCORE.search(c)]
    return "; ".join(facts or clauses[:1]).replace("≠", " not ").replace("=", " ")


class Chip(BaseModel):
    """One removable constraint in the memory panel."""

    kind: ChipKind
    label: str
    facet: str | None = None
    value: Any = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.facet or ''}:{self.value}"


def memory_chips(memory: dict[str, Any]) -> list[Chip]:
    """Chips for the constraints and preferences in a memory dict (a full ``SessionMemory`` dump or
    its ``summary()``), in a stable order."""
    constraints = memory.get("constraints", memory)
    chips: list[Chip] = []
    for facet, values in sorted((constraints.get("must") or {}).items()):
        chips += [Chip(kind="must", label=f"{facet}: {v}", facet=facet, value=v) for v in values]
    for facet, values in sorted((constraints.get("avoid") or {}).items()):
        chips += [Chip(kind="avoid", label=f"no {v} ({facet})", facet=facet, value=v) for v in values]
    if constraints.get("price_min") is not None:
        chips.append(Chip(kind="price_min", label=f"from {constraints['price_min']:g}",
                          value=constraints["price_min"]))
    if constraints.get("price_max") is not None:
        chips.append(Chip(kind="price_max", label=f"up to {constraints['price_max']:g}",
                          value=constraints["price_max"]))
    chips += [Chip(kind="preference", label=str(p), value=p) for p in memory.get("preferences") or []]
    details = [d.get("text") if isinstance(d, dict) else d for d in memory.get("details") or []]
    chips += [Chip(kind="detail", label=f"“{text}”", value=text) for text in dict.fromkeys(details) if text]
    chips += [Chip(kind="anchor", label=f"like {a.get('title') or a['id']}", value=a["id"])
              for a in memory.get("anchors") or [] if isinstance(a, dict) and a.get("id")]
    return chips


def remove_chip(memory: SessionMemory, chip: Chip) -> None:
    """Drop one remembered item from the memory (the shopper clicked its ✕): ``memory.forget_item``, the
    same rule as ``Assistant.forget``. Raises ``NotRemembered`` if it is already gone."""
    from atelier.memory.update import forget_item

    forget_item(memory, chip.kind, chip.facet, chip.value)


def transcript_from_turns(session_id: str, turns: Iterable[dict[str, Any]],
                          lookup: Callable[[list[str]], list[Product]], memory: dict[str, Any]) -> Transcript:
    """Rebuild a past session's chat from its turn log (``Assistant.history``: message, result ids, reply)."""
    transcript = Transcript(session_id=session_id, memory=memory)
    for turn in turns:
        if turn.get("kind", "message") != "message":
            continue
        transcript.add_user(turn.get("message") or "(photo)")
        reply = transcript.add_assistant()
        reply.text = turn.get("reply") or ""
        reply.error = "This turn failed." if turn.get("error") else None
        ids = list(turn.get("result_ids") or [])
        products = lookup(ids) if ids else []
        if products:
            reply.groups.append(ProductGroup(results=[SearchResult.from_product(p, 0.0, "") for p in products]))
    return transcript
