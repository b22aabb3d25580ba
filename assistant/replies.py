"""Deterministic reply text from ``prompts/replies.yaml``: the offline assistant's words, and the
``template_reply`` any LLM backend starts from. Values come only from tool results and the memory, so a
template reply never names a product or price that was not shown.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import yaml

from atelier.memory.compose import describe_constraints
from atelier.memory.state import Constraints
from atelier.tools.relevance import Honesty
from atelier.tools.schema import UNKNOWN, SearchResult
from atelier.tools.settings import PROMPTS_DIR


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


@lru_cache(maxsize=1)
def templates() -> dict[str, Any]:
    return yaml.safe_load((PROMPTS_DIR / "replies.yaml").read_text())


def render(section: str, key: str, **values: Any) -> str:
    """Fill one template; unknown placeholders render empty."""
    return " ".join(templates()[section][key].format_map(_Blank(values)).split())


def price_text(price: float | None) -> str:
    return "no price listed" if price is None else f"{price:.2f}"


def item_text(result: SearchResult) -> str:
    facets = " ".join(v for v in (result.colour, result.category) if v and v != UNKNOWN)
    details = ", ".join(p for p in (facets, price_text(result.price)) if p)
    return f"{result.title} ({details})"


def what_text(constraints: Constraints, fallback: str = "items") -> str:
    """The constraints as words: "blue dress for women, not black, under 30.00"."""
    phrase = describe_constraints(constraints)
    noun = phrase or fallback
    parts = [noun if not phrase else _pluralise(phrase, constraints)]
    for facet, values in constraints.avoid.items():
        parts.append("not " + " or ".join(values))
    if constraints.price_min is not None and constraints.price_max is not None:
        parts.append(f"between {constraints.price_min:.2f} and {constraints.price_max:.2f}")
    elif constraints.price_max is not None:
        parts.append(f"up to {constraints.price_max:.2f}")
    elif constraints.price_min is not None:
        parts.append(f"from {constraints.price_min:.2f}")
    return ", ".join(parts)


UNCOUNTED = {"jewellery", "other", "full-body", "swimwear", "underwear", "nightwear", "outerwear", "shoes", "trousers",
             "jeans", "shorts", "leggings", "sneakers", "boots", "heels", "sandals", "flats", "earrings", "pyjamas",
             "socks", "tights", "sunglasses", "gloves", "briefs"}


def _pluralise(phrase: str, constraints: Constraints) -> str:
    """ "black dress for women" → "black dresses for women" (category nouns only; groups stay as they are)."""
    noun = (constraints.must.get("category") or [""])[-1]
    if not noun:
        group = (constraints.must.get("group") or [""])[-1]
        return phrase if group else f"{phrase} items"
    if noun in UNCOUNTED:
        return phrase
    plural = noun + ("es" if noun.endswith(("s", "ch", "sh", "x")) else "s")
    return re.sub(rf"\b{re.escape(noun)}\b", plural, phrase, count=1)


def also_text(results: list[SearchResult]) -> str:
    return f"; also {item_text(results[1])}" if len(results) > 1 else ""


def results_reply(section: str, results: list[SearchResult], **values: Any) -> str:
    if not results:
        return render(section, "empty", suggestion=templates()["suggestions"][0], **values)
    key = "one" if len(results) == 1 else "results"
    return render(section, key, n=len(results), top=item_text(results[0]), also=also_text(results), **values)


def plural(word: str) -> str:
    """ "bag" → "bags", "dress" → "dresses"; words already plural or uncounted stay."""
    if word in UNCOUNTED or word.endswith("s"):
        return word
    return word + ("es" if word.endswith(("ch", "sh", "x")) else "s")


def _either(words: list[str]) -> str:
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def honest_reply(section: str, results: list[SearchResult], honesty: Honesty | None, **values: Any) -> str:
    """The search reply: ``results_reply`` for a full match; otherwise never "matches" — say what is missing,
    naming every unmatched term, then show the closest items as such ("I have no golf shoes; these are other
    shoes. Closest: …")."""
    if honesty is None or honesty.match or (not results and not honesty.refused):
        return results_reply(section, results, **values)
    prefix = values.get("changes_sentence", "")
    missing = [u for u in honesty.unmatched if u not in honesty.sizes]
    if not results:
        return prefix + render("honest", "out_of_domain", missing=_either(honesty.unmatched or honesty.terms))
    head = honesty.head
    if head and honesty.head_matched:
        qualifiers = [u for u in missing if u != head]
        parts = []
        if qualifiers:
            key = "no_such" if len(qualifiers) == 1 else "not_mentioned"
            parts.append(render("honest", key, wanted=" ".join([*qualifiers, plural(head)]), head=plural(head),
                                missing=_either(qualifiers)))
        if honesty.sizes:
            parts.append(render("honest", "sizes", sizes=_either(honesty.sizes)))
    elif head:
        others = [u for u in missing if u != head]
        parts = [render("honest", "no_head", head_article=f"a {head}" if not head.endswith("s") else head,
                        also_missing=f" or mentions {_either(others)}" if others else "")]
    elif missing:
        parts = [render("honest", "no_words", missing=_either(missing))]
    else:
        parts = [render("honest", "no_match", what=values.get("what", "that"))]
    closest = render("honest", "closest", top=item_text(results[0]), also=also_text(results))
    return prefix + " ".join([*parts, closest])


def honest_title(honesty: Honesty | None) -> str | None:
    """The products row's title when the results are only the closest items (the widget and Streamlit show it)."""
    if honesty is None or honesty.match or honesty.refused:
        return None
    return render("honest", "title", missing=_either(honesty.unmatched) if honesty.unmatched else "exact match")
