"""Hand-written outfit rules: colour harmony, competing patterns, one department, description similarity.

The colour and pattern vocabulary is data (``prompts/outfit.yaml``); these are the ``rules`` and ``style``
signals the compatibility scorer blends with its learnt ones (``tools.outfit_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from dataclasses import dataclass

import numpy as np
import yaml

from atelier.tools.schema import UNKNOWN
from atelier.tools.settings import PROMPTS_DIR


@dataclass
class ItemFeatures:
    """What the scorer knows of one item: its taxonomy facets and its encoder vectors (L2-normalised).

    ``text`` is the item's description vector (for an uploaded photo: the mean description vector of its
    nearest catalog items); ``image`` its photo vector, when there is one.
    """

    group: str
    category: str = UNKNOWN
    colour: str = UNKNOWN
    pattern: str = UNKNOWN
    gender: str = UNKNOWN
    text: np.ndarray | None = None
    image: np.ndarray | None = None



@cache
def _rules() -> dict[str, frozenset]:
    data = yaml.safe_load((PROMPTS_DIR / "outfit.yaml").read_text())
    return {"neutrals": frozenset(data["neutral_colours"]),
            "good_pairs": frozenset(frozenset(p) for p in data["good_colour_pairs"]),
            "clashes": frozenset(frozenset(p) for p in data["clashing_colour_pairs"]),
            "loud_patterns": frozenset(data["loud_patterns"])}


def neutral_colours() -> frozenset[str]:
    return _rules()["neutrals"]


def colour_harmony(a: str, b: str) -> float:
    """+1 when a neutral is involved, +0.5 for a tonal or classic pairing, -1 for a clash, 0 when unknown."""
    if UNKNOWN in (a, b):
        return 0.0
    if a in _rules()["neutrals"] or b in _rules()["neutrals"]:
        return 1.0
    if a == b:
        return 0.5
    pair = frozenset((a, b))
    if pair in _rules()["good_pairs"]:
        return 0.5
    if pair in _rules()["clashes"]:
        return -1.0
    return -0.25


def pattern_harmony(a: str, b: str) -> float:
    """Two loud patterns compete; one pattern with plain pieces is fine."""
    loud = _rules()["loud_patterns"]
    return -1.0 if a in loud and b in loud else 0.0


def gender_harmony(a: str, b: str) -> float:
    if UNKNOWN in (a, b) or "unisex" in (a, b) or a == b:
        return 0.0
    return -1.0


def rule_score(outfit: Sequence[ItemFeatures], candidate: ItemFeatures) -> float:
    """Mean colour + pattern + department harmony of a candidate with every outfit item."""
    if not outfit:
        return 0.0
    total = sum(colour_harmony(o.colour, candidate.colour) + pattern_harmony(o.pattern, candidate.pattern)
                + 2.0 * gender_harmony(o.gender, candidate.gender) for o in outfit)
    return total / len(outfit)


def style_score(outfit: Sequence[ItemFeatures], candidate: ItemFeatures) -> float:
    """Mean description-vector similarity to the outfit items. (Photo vectors drive candidate retrieval and
    diversity; the blend reads description vectors only, the same signal it was tuned on.)"""
    sims = [float(np.dot(o.text, candidate.text)) for o in outfit if o.text is not None and candidate.text is not None]
    return float(np.mean(sims)) if sims else 0.0
