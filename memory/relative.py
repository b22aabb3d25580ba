"""Relative feedback ("cheaper", "longer", "darker", "more formal"), each applied to the current reference.

A registry of ``RelativeChange``: price moves rewrite the price bounds from the anchor price; the others
become soft preferences that re-rank results against the reference product (darker *than it*, more formal
*than it*) and add a hint word to the query text. "For men instead" needs no entry: it is a facet value
that replaces the old one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from atelier.memory.state import SessionMemory
from atelier.tools.schema import Product

PRICE_STEP = 0.9

Scorer = Callable[[Product], float]


@dataclass(frozen=True)
class RelativeChange:
    name: str
    opposite: str | None
    hint: str
    score: Scorer | None = None
    apply_price: Callable[[SessionMemory], str | None] | None = None


def cheaper(memory: SessionMemory) -> str | None:
    """Price ceiling below the anchor (the referenced product, else the higher of the top match's and the median
    shown price). "Cheaper" contradicts any price floor, so the floor goes (later feedback overrides)."""
    anchor = memory.anchor_price(max)
    if anchor is None:
        return "no price to compare with yet"
    c = memory.constraints
    ceiling = round(anchor * PRICE_STEP, 2)
    c.price_max = ceiling if c.price_max is None else min(c.price_max, ceiling)
    c.price_min = None
    return None


def pricier(memory: SessionMemory) -> str | None:
    """Price floor above the anchor (the lower of the top match's and the median shown price); drops any
    ceiling."""
    anchor = memory.anchor_price(min)
    if anchor is None:
        return "no price to compare with yet"
    c = memory.constraints
    floor = round(anchor / PRICE_STEP, 2)
    c.price_min = floor if c.price_min is None else max(c.price_min, floor)
    c.price_max = None
    return None


_LONG = re.compile(r"\b(?:long|maxi|calf-length|ankle-length|floor-length|full-length|midi)\b(?![\s-]*sleeve)", re.I)
_SHORT = re.compile(r"\b(?:short|mini|cropped|crop|above the knee)\b(?![\s-]*sleeve)", re.I)


def length(product: Product) -> float:
    text = f"{product.title}. {product.description}"
    return float(bool(_LONG.search(text))) - float(bool(_SHORT.search(text)))


PERCEIVED_LIGHTNESS = {"dark": 0.1, "medium dusty": 0.4, "medium": 0.5, "dusty light": 0.65, "bright": 0.6,
                       "light": 0.85, "undefined": 0.5}
COLOUR_LIGHTNESS = {"black": 0.05, "navy": 0.15, "brown": 0.3, "khaki": 0.35, "purple": 0.35, "red": 0.4,
                    "green": 0.45, "grey": 0.5, "blue": 0.5, "turquoise": 0.55, "gold": 0.6, "orange": 0.6,
                    "multi": 0.5, "silver": 0.7, "pink": 0.7, "beige": 0.75, "yellow": 0.8, "white": 0.95}


def lightness(product: Product) -> float:
    """0 (darkest) .. 1 (lightest): H&M's perceived colour value when known, else the colour family's."""
    perceived = str(product.attributes.get("perceived_colour_value_name", "")).lower()
    family = COLOUR_LIGHTNESS.get(product.colour, 0.5)
    if perceived in PERCEIVED_LIGHTNESS:
        return 0.6 * PERCEIVED_LIGHTNESS[perceived] + 0.4 * family
    return family


FORMAL_CATEGORY = {"blazer": 0.9, "tie": 0.9, "waistcoat": 0.8, "heels": 0.8, "shirt": 0.7, "blouse": 0.7,
                   "coat": 0.7, "dress": 0.6, "flats": 0.5, "trousers": 0.5, "skirt": 0.5, "bag": 0.5,
                   "jumpsuit": 0.5, "boots": 0.5, "cardigan": 0.4, "sweater": 0.4, "top": 0.35, "jacket": 0.4,
                   "polo": 0.35, "jeans": 0.2, "shorts": 0.15, "t-shirt": 0.1, "leggings": 0.1,
                   "sneakers": 0.1, "hoodie": 0.05, "sandals": 0.3}
_FORMAL_SOURCE = re.compile(r"tailor|smart|premium|dressed|suit|formal|occasion|party", re.I)
_CASUAL_SOURCE = re.compile(r"jersey|sport|casual|street|divided|denim|basic|lounge", re.I)
_FORMAL_TEXT = re.compile(r"\b(?:tailored|elegant|satin|blazer|pleat(?:ed|s)?|suit|crêpe|crepe|chiffon|silk|wool|"
                          r"lapels?|formal|pressed|creases?)\b", re.I)
_CASUAL_TEXT = re.compile(r"\b(?:jersey|sweatshirt|hood|slogan|printed motif|relaxed|drawstring|fleece|"
                          r"sporty|denim|washed|distressed)\b", re.I)


def formality(product: Product) -> float:
    """0 (casual) .. ~1 (formal), from the category, the catalog section and the description's words."""
    score = FORMAL_CATEGORY.get(product.category, 0.4)
    source = " ".join(str(product.attributes.get(k, "")) for k in ("section_name", "garment_group_name",
                                                                    "department_name", "usage"))
    score += 0.2 * bool(_FORMAL_SOURCE.search(source)) - 0.2 * bool(_CASUAL_SOURCE.search(source))
    text = f"{product.title}. {product.description}"
    score += 0.15 * min(2, len(_FORMAL_TEXT.findall(text))) - 0.15 * min(2, len(_CASUAL_TEXT.findall(text)))
    return score


RELATIVE: dict[str, RelativeChange] = {
    change.name: change for change in (
        RelativeChange("cheaper", "pricier", "", apply_price=cheaper),
        RelativeChange("pricier", "cheaper", "", apply_price=pricier),
        RelativeChange("longer", "shorter", "long", score=length),
        RelativeChange("shorter", "longer", "short", score=lambda p: -length(p)),
        RelativeChange("darker", "lighter", "dark", score=lambda p: -lightness(p)),
        RelativeChange("lighter", "darker", "light", score=lightness),
        RelativeChange("more_formal", "more_casual", "elegant tailored", score=formality),
        RelativeChange("more_casual", "more_formal", "casual relaxed", score=lambda p: -formality(p)),
    )
}


def apply_relative(memory: SessionMemory, names: list[str]) -> list[str]:
    """Apply relative feedback to the memory; returns notes for anything that could not be applied."""
    notes: list[str] = []
    for name in names:
        change = RELATIVE.get(name)
        if change is None:
            continue
        if change.apply_price is not None:
            note = change.apply_price(memory)
            if note:
                notes.append(f"{name}: {note}")
            continue
        memory.preferences = [p for p in memory.preferences if p not in (name, change.opposite)] + [name]
    return notes


def preference_hints(preferences: list[str]) -> str:
    return " ".join(RELATIVE[p].hint for p in preferences if p in RELATIVE and RELATIVE[p].hint)


def preference_score(product: Product, preferences: list[str], reference: Product | None = None) -> float:
    """Sum of the active preferences' scores, each relative to the reference product when there is one."""
    total = 0.0
    for name in preferences:
        change = RELATIVE.get(name)
        if change is None or change.score is None:
            continue
        value = change.score(product)
        if reference is not None:
            value -= change.score(reference)
        total += value
    return total
