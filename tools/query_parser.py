"""Turn the obvious constraints of a shopper's query into filters: "black dress under 40" →
colour=black, category=dress, price ≤ 40; "not black", "without print" → must-avoid.

Rule-based on purpose: the shared taxonomy's synonyms make it exact and instant, and an LLM parser
(when configured) produces the same ``SearchFilters`` type.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from atelier.tools.lexicon import alternation, shopper_vocabulary
from atelier.tools.lexicon import negated as lexicon_negated
from atelier.tools.taxonomy import Mention, Taxonomy, get_taxonomy

FACET_FIELDS = ("category", "group", "colour", "pattern", "gender", "source")

_NUMBER = r"(\d+(?:[.,]\d+)?)"


@lru_cache(maxsize=1)
def price_rules() -> list[tuple[re.Pattern[str], str]]:
    """Price phrases (``prompts/vocabulary.yaml`` ``price``): "between 20 and 40", "20-40 euros", "under 30",
    "60 max", "at least 50"."""
    words = shopper_vocabulary()["price"]
    symbol = r"[$€£]?"
    currency = rf"(?:\s*(?:{alternation(words['currency'], strict=None)}))?"
    joiners = alternation(words["range_joiners"], strict=None)
    at_most, at_least = alternation(words["at_most"], strict=None), alternation(words["at_least"], strict=None)
    between = rf"\bbetween\s*{symbol}{_NUMBER}{currency}\s*(?:and|{joiners})\s*{symbol}{_NUMBER}"
    span = rf"{symbol}{_NUMBER}{currency}\s*(?:{joiners})\s*{symbol}{_NUMBER}{currency}(?=\s*(?:$|[^\w]))"
    after = alternation(words["at_most_after"], strict=False)
    return [(re.compile(between, re.IGNORECASE), "range"), (re.compile(span, re.IGNORECASE), "range"),
            (re.compile(rf"(?:{at_most})\s*{symbol}{_NUMBER}", re.IGNORECASE), "max"),
            (re.compile(rf"{symbol}{_NUMBER}{currency}\s*,?\s*{after}", re.IGNORECASE), "max"),
            (re.compile(rf"(?:{at_least})\s*{symbol}{_NUMBER}", re.IGNORECASE), "min")]


class SearchFilters(BaseModel):
    """Hard constraints of a search: allowed values (any of) and forbidden values per facet, a price range,
    and ids never to show again (SoFT's must-have / must-avoid constraints)."""

    must: dict[str, list[str]] = Field(default_factory=dict)
    avoid: dict[str, list[str]] = Field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None
    exclude_ids: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.must or self.avoid or self.price_min is not None or self.price_max is not None)

    def merged(self, other: SearchFilters) -> SearchFilters:
        """``other`` on top of ``self``: per facet, the later constraint wins."""
        must = {**self.must, **other.must}
        avoid = {**self.avoid, **other.avoid}
        for facet, values in other.must.items():
            if facet in avoid:
                avoid[facet] = [v for v in avoid[facet] if v not in values]
        for facet, values in other.avoid.items():
            if facet in must:
                must[facet] = [v for v in must[facet] if v not in values]
        return SearchFilters(
            must={f: v for f, v in must.items() if v},
            avoid={f: v for f, v in avoid.items() if v},
            price_min=other.price_min if other.price_min is not None else self.price_min,
            price_max=other.price_max if other.price_max is not None else self.price_max,
            exclude_ids=list(dict.fromkeys(self.exclude_ids + other.exclude_ids)),
        )

    def matches(self, meta: dict[str, Any]) -> bool:
        """Whether a product's metadata satisfies these filters (the same logic as ``to_where``)."""
        for facet, values in self.must.items():
            if meta.get(facet) not in allowed_values(facet, values):
                return False
        for facet, values in self.avoid.items():
            if meta.get(facet) in values:
                return False
        price = meta.get("price")
        if self.price_min is not None and (price is None or price < self.price_min):
            return False
        if self.price_max is not None and (price is None or price > self.price_max):
            return False
        return True

    def to_where(self) -> dict[str, Any] | None:
        """The Chroma ``where`` clause (exclude_ids are applied after the query)."""
        clauses: list[dict[str, Any]] = []
        for facet, values in sorted(self.must.items()):
            clauses.append({facet: {"$in": allowed_values(facet, values)}})
        for facet, values in sorted(self.avoid.items()):
            clauses.append({facet: {"$nin": list(values)}})
        if self.price_min is not None:
            clauses.append({"price": {"$gte": float(self.price_min)}})
        if self.price_max is not None:
            clauses.append({"price": {"$lte": float(self.price_max)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def allowed_values(facet: str, values: list[str]) -> list[str]:
    """Unisex items serve either gender."""
    if facet == "gender" and any(v in ("women", "men") for v in values):
        return list(dict.fromkeys([*values, "unisex"]))
    return list(values)


class ParsedQuery(BaseModel):
    """A query split into its hard constraints and the free text that remains."""

    text: str
    filters: SearchFilters
    mentions: list[dict[str, str]] = Field(default_factory=list)


def parse_price(text: str) -> tuple[float | None, float | None, str]:
    """Price bounds in ``text`` and the text without them."""
    low = high = None
    for pattern, kind in price_rules():
        match = pattern.search(text)
        if not match:
            continue
        numbers = [float(g.replace(",", ".")) for g in match.groups() if g]
        if kind == "range" and len(numbers) == 2:
            low, high = min(numbers), max(numbers)
        elif kind == "max" and high is None:
            high = numbers[0]
        elif kind == "min" and low is None:
            low = numbers[0]
        text = text[: match.start()] + " " + text[match.end():]
    return low, high, text


def negated(text: str, mention: Mention) -> bool:
    """Whether a mention is preceded by a negation ("not black", "no print", "without stripes")."""
    return lexicon_negated(text.lower(), mention.start)


def parse_query(text: str, taxonomy: Taxonomy | None = None) -> ParsedQuery:
    """Extract taxonomy values (must / avoid) and price bounds from a free-text query."""
    taxonomy = taxonomy or get_taxonomy()
    low, high, rest = parse_price(text)
    must: dict[str, list[str]] = {}
    avoid: dict[str, list[str]] = {}
    mentions = taxonomy.find_mentions(rest)
    for mention in mentions:
        target = avoid if negated(rest, mention) else must
        target.setdefault(mention.facet, [])
        if mention.value not in target[mention.facet]:
            target[mention.facet].append(mention.value)
    filters = SearchFilters(must=must, avoid=avoid, price_min=low, price_max=high)
    return ParsedQuery(text=text.strip(), filters=filters,
                       mentions=[{"facet": m.facet, "value": m.value, "surface": m.surface} for m in mentions])
