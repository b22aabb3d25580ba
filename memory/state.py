"""The session memory: everything the assistant remembers about one conversation, as one JSON object.

Kept as plain pydantic data so the shopper can see exactly what is remembered (``MemoryEvent``), and so
it can be stored, diffed and replayed. The *cascade* in it follows FashionNTM (Pal et al., ICCV 2023):
each turn's feedback is written to memory and the next query reads all of it — the reference products
and images (``anchors``) and each turn's descriptive text (``details``), newest weighted most — rather
than the last message alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from atelier.tools.query_parser import SearchFilters
from atelier.tools.relevance import Honesty


class Constraints(BaseModel):
    """Hard constraints per facet: allowed values (``must``), forbidden values (``avoid``), price bounds."""

    must: dict[str, list[str]] = Field(default_factory=dict)
    avoid: dict[str, list[str]] = Field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None

    def is_empty(self) -> bool:
        return not (self.must or self.avoid or self.price_min is not None or self.price_max is not None)


class Anchor(BaseModel):
    """A product or uploaded image the search should resemble: FashionNTM's reference, kept per turn."""

    kind: Literal["product", "image"]
    id: str
    role: Literal["reference", "liked"] = "reference"
    turn: int
    title: str = ""
    price: float | None = None
    image_path: str | None = None


class Detail(BaseModel):
    """Descriptive words of one turn beyond taxonomy facets ("long sleeves", "party")."""

    turn: int
    text: str


class ShownItem(BaseModel):
    """A result as shown, enough to resolve "the second one" and "cheaper" without a store lookup."""

    id: str
    title: str
    price: float | None = None
    colour: str = ""
    category: str = ""


class SessionMemory(BaseModel):
    """One conversation's memory. ``disliked`` ids never come back in the session (even after "start over")."""

    session_id: str
    turn: int = 0
    topic: int = 0
    constraints: Constraints = Field(default_factory=Constraints)
    preferences: list[str] = Field(default_factory=list)
    details: list[Detail] = Field(default_factory=list)
    anchors: list[Anchor] = Field(default_factory=list)
    liked: list[str] = Field(default_factory=list)
    disliked: list[str] = Field(default_factory=list)
    dismissed: list[str] = Field(default_factory=list)
    shown: list[ShownItem] = Field(default_factory=list)
    focus: str | None = None
    image: str | None = None
    last_intent: str | None = None
    last_query: dict | None = None
    honesty: Honesty | None = Field(None, description="the last search's match: which request terms no result has")
    notes: list[str] = Field(default_factory=list)
    _version: int = PrivateAttr(0)
    """The stored version this memory was loaded at (``memory.store``'s optimistic concurrency check)."""

    def filters(self) -> SearchFilters:
        """The hard filters of the next search: constraints plus every id never to show again."""
        c = self.constraints
        return SearchFilters(must={f: list(v) for f, v in c.must.items()},
                             avoid={f: list(v) for f, v in c.avoid.items()},
                             price_min=c.price_min, price_max=c.price_max,
                             exclude_ids=list(dict.fromkeys(self.disliked + self.dismissed)))

    def shown_ids(self) -> list[str]:
        return [item.id for item in self.shown]

    def resolve(self, rank: int) -> str | None:
        """A 1-based rank of the last results (-1: the last one; 0: the product in focus) → its id."""
        if rank == 0:
            return self.focus or (self.shown[0].id if self.shown else None)
        if not self.shown:
            return None
        index = rank - 1 if rank > 0 else len(self.shown) + rank
        return self.shown[index].id if 0 <= index < len(self.shown) else None

    def shown_item(self, product_id: str) -> ShownItem | None:
        return next((item for item in self.shown if item.id == product_id), None)

    def anchor_price(self, pick: Callable[[float, float], float] = max) -> float | None:
        """The price that "cheaper" / "more expensive" is relative to: the product in focus or a reference
        named in this turn ("like the second one but cheaper"); else, since the shopper now compares with what
        is shown, ``pick`` of the top match's price (the one the reply names) and the median shown. "Cheaper"
        passes ``max`` and "more expensive" ``min``, so a bound that relative feedback sets never excludes what
        the shopper may have been comparing with."""
        if self.focus:
            item = self.shown_item(self.focus)
            if item and item.price is not None:
                return item.price
            for anchor in reversed(self.anchors):
                if anchor.id == self.focus and anchor.price is not None:
                    return anchor.price
        for anchor in reversed(self.anchors):
            if (anchor.kind == "product" and anchor.role == "reference" and anchor.price is not None
                    and anchor.turn == self.turn):
                return anchor.price
        prices = [item.price for item in self.shown if item.price is not None]
        if not prices:
            return None
        top = self.shown[0].price if self.shown[0].price is not None else prices[0]
        return pick(top, statistics.median(prices))

    def summary(self) -> dict:
        """The compact view an LLM gets (and the CLI prints): constraints and feedback, no bookkeeping."""
        c = self.constraints
        out: dict = {"must": c.must, "avoid": c.avoid}
        if c.price_min is not None:
            out["price_min"] = c.price_min
        if c.price_max is not None:
            out["price_max"] = c.price_max
        for name in ("preferences", "liked", "disliked"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.anchors:
            out["references"] = [a.title or a.id for a in self.anchors]
        if self.details:
            out["details"] = [d.text for d in self.details]
        if self.honesty is not None and not self.honesty.match and self.honesty.unmatched:
            out["not_found"] = self.honesty.unmatched
        return out
