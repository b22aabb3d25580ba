"""Write one parsed turn into the session memory (pure logic: no I/O, no search).

Rules, in the order applied: references resolve to the ids of the results shown last; feedback on them
(like / dislike / "more like") updates the anchors; a new topic keeps only the shopper's gender; later
constraints override only what they contradict (per facet: a new colour replaces the old colour, an
exclusion removes that value from the wanted ones, "black is fine" lifts the exclusion of black and
nothing else); relative feedback applies to the product in focus; each turn's descriptive words join the
text cascade. "Start over" clears everything but the dislikes.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

from atelier.memory.intent import TurnIntent
from atelier.memory.relative import apply_relative
from atelier.memory.state import Anchor, Constraints, Detail, SessionMemory
from atelier.tools.errors import InputError
from atelier.tools.taxonomy import get_taxonomy

MAX_ANCHORS = 6
MAX_DETAILS = 8
SEARCH_INTENTS = ("search", "refine", "composed")


class TurnUpdate(BaseModel):
    """What a turn resolved to: product ids for the handler, and anything that could not be applied."""

    referenced: list[str] = Field(default_factory=list)
    similar: list[str] = Field(default_factory=list)
    liked: list[str] = Field(default_factory=list)
    disliked: list[str] = Field(default_factory=list)
    unresolved: list[int] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def start_over(memory: SessionMemory) -> None:
    """Forget the conversation; dislikes stay (a disliked item never returns in this session)."""
    fresh = SessionMemory(session_id=memory.session_id, turn=memory.turn, topic=memory.topic + 1,
                          disliked=memory.disliked)
    for name in SessionMemory.model_fields:
        setattr(memory, name, getattr(fresh, name))


def new_topic(memory: SessionMemory) -> None:
    """A search for something else: constraints, anchors and details go; the shopper's gender stays."""
    gender = memory.constraints.must.get("gender")
    memory.constraints = Constraints(must={"gender": gender} if gender else {})
    memory.anchors, memory.details, memory.preferences, memory.dismissed = [], [], [], []
    memory.focus = None
    memory.topic += 1


def apply_constraints(constraints: Constraints, intent: TurnIntent) -> None:
    """Later feedback overrides only what it contradicts."""
    taxonomy = get_taxonomy()
    must, avoid = constraints.must, constraints.avoid
    for facet, values in intent.must.items():
        must[facet] = list(values)
        if facet in avoid:
            avoid[facet] = [v for v in avoid[facet] if v not in values]
        if facet == "category":
            must.pop("group", None)
        if facet == "group" and must.get("category"):
            if {taxonomy.group_of(v) for v in must["category"]} - set(values):
                del must["category"]
    for facet, values in intent.avoid.items():
        avoid[facet] = list(dict.fromkeys(avoid.get(facet, []) + values))
        if facet in must:
            must[facet] = [v for v in must[facet] if v not in values]
    for facet, values in intent.allow.items():
        if facet in avoid:
            avoid[facet] = [v for v in avoid[facet] if v not in values]
    constraints.must = {f: v for f, v in must.items() if v}
    constraints.avoid = {f: v for f, v in avoid.items() if v}
    if intent.price_min is not None or intent.price_max is not None:
        if intent.price_min is not None:
            constraints.price_min = intent.price_min
            if constraints.price_max is not None and constraints.price_max < intent.price_min:
                constraints.price_max = None
        if intent.price_max is not None:
            constraints.price_max = intent.price_max
            if constraints.price_min is not None and constraints.price_min > intent.price_max:
                constraints.price_min = None


def add_anchor(memory: SessionMemory, anchor: Anchor) -> None:
    memory.anchors = [a for a in memory.anchors if not (a.kind == anchor.kind and a.id == anchor.id)] + [anchor]
    memory.anchors = memory.anchors[-MAX_ANCHORS:]


def product_anchor(memory: SessionMemory, product_id: str, role: str) -> Anchor:
    item = memory.shown_item(product_id)
    return Anchor(kind="product", id=product_id, role=role, turn=memory.turn,
                  title=item.title if item else "", price=item.price if item else None)


def apply_turn(memory: SessionMemory, intent: TurnIntent, *, image_key: str | None = None,
               image_path: str | None = None) -> TurnUpdate:
    """Update ``memory`` in place with one parsed turn; the caller searches and records what it shows."""
    memory.turn += 1
    memory.last_intent = intent.intent
    memory.notes = []
    update = TurnUpdate()
    if intent.intent == "start_over":
        start_over(memory)
        memory.last_intent = "start_over"
        return update

    def ids(ranks: list[int]) -> list[str]:
        found = []
        for rank in ranks:
            pid = memory.resolve(rank)
            if pid is None:
                if rank not in update.unresolved:
                    update.unresolved.append(rank)
            elif pid not in found:
                found.append(pid)
        return found

    update.referenced = ids(intent.references)
    update.similar = ids([r for r in intent.similar if r != 0]) + (
        [memory.resolve(0)] if 0 in intent.similar and memory.resolve(0) else [])
    update.liked = ids(intent.like)
    update.disliked = ids(intent.dislike)
    if intent.this and not update.referenced and memory.focus:
        update.referenced = [memory.focus]

    if intent.intent == "search" and intent.new_topic:
        new_topic(memory)
    if intent.intent in SEARCH_INTENTS and intent.show_more:
        memory.dismissed = list(dict.fromkeys(memory.dismissed + memory.shown_ids()))

    for pid in update.disliked:
        if pid not in memory.disliked:
            memory.disliked.append(pid)
        memory.anchors = [a for a in memory.anchors if a.id != pid]
        memory.liked = [x for x in memory.liked if x != pid]
        if memory.focus == pid:
            memory.focus = None
    for pid in update.liked:
        if pid not in memory.liked:
            memory.liked.append(pid)
        add_anchor(memory, product_anchor(memory, pid, "liked"))
    references = update.similar or (update.referenced if intent.intent == "composed" else [])
    for pid in references:
        add_anchor(memory, product_anchor(memory, pid, "reference"))
    if update.referenced:
        memory.focus = update.referenced[-1]
    elif update.similar:
        memory.focus = update.similar[-1]

    if image_key is not None:
        add_anchor(memory, Anchor(kind="image", id=image_key, role="reference", turn=memory.turn,
                                  title="your photo", image_path=image_path))
        memory.image = image_key
        memory.focus = None

    if intent.intent in SEARCH_INTENTS:
        apply_constraints(memory.constraints, intent)
        update.notes.extend(apply_relative(memory, intent.relative))
        if intent.details:
            memory.details = (memory.details + [Detail(turn=memory.turn, text=intent.details)])[-MAX_DETAILS:]
    if update.unresolved:
        update.notes.append("no result at rank " + ", ".join(str(r) for r in update.unresolved))
    memory.notes = list(update.notes)
    return update


def record_shown(memory: SessionMemory, results: list) -> None:
    """Remember what was shown (ranked), so the next turn can say "the second one"."""
    from atelier.memory.state import ShownItem

    if not results:
        return
    memory.shown = [ShownItem(id=r.id, title=r.title, price=r.price, colour=r.colour, category=r.category)
                    for r in results]


def apply_feedback(memory: SessionMemory, product_id: str, kind: str) -> None:
    """A click on a shown product: like / dislike / more_like_this."""
    if kind == "dislike":
        if product_id not in memory.disliked:
            memory.disliked.append(product_id)
        memory.liked = [x for x in memory.liked if x != product_id]
        memory.anchors = [a for a in memory.anchors if a.id != product_id]
        if memory.focus == product_id:
            memory.focus = None
        return
    memory.disliked = [x for x in memory.disliked if x != product_id]
    if kind == "like":
        if product_id not in memory.liked:
            memory.liked.append(product_id)
        add_anchor(memory, product_anchor(memory, product_id, "liked"))
    else:
        add_anchor(memory, product_anchor(memory, product_id, "reference"))
    memory.focus = product_id


FeedbackKind = Literal["like", "dislike", "more_like_this"]
MemoryKind = Literal["must", "avoid", "price_min", "price_max", "preference", "detail", "anchor"]
FEEDBACK_KINDS: tuple[str, ...] = get_args(FeedbackKind)
FORGET_KINDS: tuple[str, ...] = get_args(MemoryKind)


class ForgetError(InputError):
    """A request to forget something that is not a rememberable item (unknown kind, missing facet or value)."""


class NotRemembered(ForgetError):
    """The item to forget is not in the session memory (already gone, or never there)."""

    code = "not_in_memory"
    status = 404


def forget_item(memory: SessionMemory, kind: str, facet: str | None = None, value: object = None) -> str:
    """Remove one remembered item from ``memory`` in place; returns a short description of what went.

    ``kind`` is one of ``FORGET_KINDS``:

    - ``must`` / ``avoid``: ``facet`` is required; ``value`` removes that one value (``None``: the whole facet);
    - ``price_min`` / ``price_max``: the bound is cleared; a ``value`` given must equal the remembered bound;
    - ``preference``: ``value`` is the preference ("darker");
    - ``detail``: ``value`` is a detail's text ("long sleeves"): every detail with that text goes;
    - ``anchor``: ``value`` is a reference anchor's id (a product id or a photo key); the product in focus is
      cleared too when it is that product.

    Raises ``ForgetError`` for a malformed request and ``NotRemembered`` when the item is not in memory.
    Everything else in the memory (the rest of the cascade, likes, dislikes, shown results) is untouched.
    """
    c = memory.constraints
    if kind in ("must", "avoid"):
        if not facet:
            raise ForgetError(f"forgetting a {kind!r} constraint needs its facet (e.g. colour)")
        facets = c.must if kind == "must" else c.avoid
        present = facets.get(facet, [])
        if value is None:
            if not present:
                raise NotRemembered(f"no {kind} constraint on {facet} is remembered")
            facets.pop(facet)
            return f"{kind} {facet}"
        kept = [v for v in present if v != value]
        if len(kept) == len(present):
            raise NotRemembered(f"{facet} {value!r} is not a remembered {kind} constraint")
        if kept:
            facets[facet] = kept
        else:
            facets.pop(facet)
        return f"{kind} {facet} {value}"
    if kind in ("price_min", "price_max"):
        current = getattr(c, kind)
        if current is None:
            raise NotRemembered(f"no {kind} is remembered")
        if value is not None:
            try:
                asked = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ForgetError(f"{kind} value must be a number, not {value!r}") from None
            if abs(asked - current) > 1e-6:
                raise NotRemembered(f"the remembered {kind} is {current:.2f}, not {asked:.2f}")
        setattr(c, kind, None)
        return f"{kind} {current:.2f}"
    if kind not in FORGET_KINDS:
        raise ForgetError(f"unknown memory kind {kind!r}; use one of {', '.join(FORGET_KINDS)}")
    if value is None or value == "":
        raise ForgetError(f"forgetting a {kind} needs its value")
    if kind == "preference":
        if value not in memory.preferences:
            raise NotRemembered(f"preference {value!r} is not remembered")
        memory.preferences = [p for p in memory.preferences if p != value]
        return f"preference {value}"
    if kind == "detail":
        if not any(d.text == value for d in memory.details):
            raise NotRemembered(f"detail {value!r} is not remembered")
        memory.details = [d for d in memory.details if d.text != value]
        return f"detail {value}"
    gone = [a for a in memory.anchors if a.id == value]
    if not gone:
        raise NotRemembered(f"no reference {value!r} is remembered")
    memory.anchors = [a for a in memory.anchors if a.id != value]
    if memory.focus == value:
        memory.focus = None
    if memory.image == value and not any(a.kind == "image" for a in memory.anchors):
        memory.image = None
    return f"anchor {gone[0].title or value}"
