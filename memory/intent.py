"""What one shopper message means, as data: the ``TurnIntent`` a parser (rules or an LLM) produces and the
memory cascade consumes, and the ``ParseContext`` a parser reads.

It lives in ``memory`` because memory is its consumer; parsers above it only produce it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

IntentName = Literal["search", "refine", "composed", "outfit", "question", "describe", "compare", "help",
                     "start_over"]
INTENTS: tuple[str, ...] = IntentName.__args__  # type: ignore[attr-defined]

class TurnIntent(BaseModel):
    """One message, parsed: the intent, constraint changes, relative feedback and result references.

    ``references`` are 1-based ranks into the results shown last (-1: the last one); ``similar`` are the
    ranks the shopper wants "more like", ``like`` / ``dislike`` the ranks they reacted to. ``allow`` lifts
    earlier exclusions ("black is fine"). ``details`` are the message's descriptive words beyond taxonomy
    facets ("with long sleeves", "for a party"): the text the memory cascade embeds.
    """

    intent: IntentName
    text: str
    details: str = ""
    change: str = ""
    must: dict[str, list[str]] = Field(default_factory=dict)
    avoid: dict[str, list[str]] = Field(default_factory=dict)
    allow: dict[str, list[str]] = Field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None
    relative: list[str] = Field(default_factory=list)
    references: list[int] = Field(default_factory=list)
    similar: list[int] = Field(default_factory=list)
    like: list[int] = Field(default_factory=list)
    dislike: list[int] = Field(default_factory=list)
    this: bool = False
    show_more: bool = False
    new_topic: bool = False
    question: str | None = None
    source: Literal["rule", "embedding", "default", "llm"] = "rule"
    score: float = 1.0

    def has_change(self) -> bool:
        """Whether the message asks for something different (facets, price, relative feedback)."""
        return bool(self.must or self.avoid or self.allow or self.relative or self.price_min is not None
                    or self.price_max is not None)


class ParseContext(BaseModel):
    """What the parser needs to know about the conversation so far."""

    has_results: bool = False
    n_shown: int = 0
    has_image: bool = False
    has_reference: bool = False
    photo_in_focus: bool = False
    category: list[str] = Field(default_factory=list)
    group: list[str] = Field(default_factory=list)
