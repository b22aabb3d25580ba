"""Coverage of a request: which content words of a query the shown results satisfy, and which none does.

"Golf shoes" answered with pumps is not a match: the garment (shoes) is satisfied, the qualifier (golf) is not,
and an honest reply says so ("I have no golf shoes; these are other shoes"). A query is split into content
terms — the garment at its head, taxonomy values (colour, pattern), sizes ("15 inch") and every other content
word (golf, ski, waterproof, surfing) — after prices, the shopper's gender and filler words are removed
(word lists in ``prompts/honesty.yaml``). A term is satisfied by a result through a matching facet, or its word
in the result's title, description or catalog fields; qualifiers must be satisfied by a result that also
carries the garment, so a ski jacket does not make "ski boots" a match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from atelier.tools.lexicon import negated as negated_at
from atelier.tools.query_parser import negated, parse_price
from atelier.tools.schema import UNKNOWN, Product, SearchResult
from atelier.tools.settings import PROMPTS_DIR
from atelier.tools.taxonomy import get_taxonomy

TermKind = Literal["category", "colour", "pattern", "group", "generic", "garment", "size", "word"]
HEAD_KINDS = ("category", "group", "generic", "garment")
TYPE_FIELDS = ("product_type_name", "articleType")
TEXT_FIELDS = ("product_type_name", "product_group_name", "department_name", "section_name", "garment_group_name",
               "index_name", "articleType", "subCategory", "usage", "season")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, Any]:
    data = yaml.safe_load((PROMPTS_DIR / "honesty.yaml").read_text())
    groups = {w: group for group, words in data["group_words"].items() for w in words}
    return {"filler": set(data["filler"]) | set(data["soft"]), "head_stops": set(data["head_stops"]), "groups": groups,
            "generic": set(data["generic_garments"]), "fashion": set(data["fashion_words"]),
            "size": re.compile(data["size_pattern"], re.I)}


def stems(word: str) -> set[str]:
    """A word's light stems (plural, -ed, -ing): "boots" → boot, "hooded" → hood, "zipped" → zip.

    Deliberately crude and symmetric (query and catalog words go through the same function), so a match
    means the same word, not a synonym."""
    w = word.lower().removesuffix("'s")
    out = {w}
    if len(w) > 3:
        if w.endswith("ies"):
            out.add(w[:-3] + "y")
        elif w.endswith(("ses", "xes", "ches", "shes", "zes")):
            out.add(w[:-2])
        if w.endswith("s") and not w.endswith(("ss", "us", "is")):
            out.add(w[:-1])
    for suffix in ("ing", "ed"):
        base = w[: -len(suffix)]
        if w.endswith(suffix) and len(base) >= 3:
            out |= {base, base + "e"}
            if base[-1] == base[-2]:
                out.add(base[:-1])
    return out


def text_stems(text: str) -> set[str]:
    found: set[str] = set()
    for token in _WORD.findall(text.lower()):
        found |= stems(token)
        if "-" in token:
            for part in token.split("-"):
                found |= stems(part)
    return found


@dataclass(frozen=True)
class Term:
    """One content term of a request: the words as the shopper wrote them, what kind they are, and the
    taxonomy value they name (for facets)."""

    text: str
    kind: TermKind
    start: int
    value: str | None = None
    head: bool = False


def request_terms(query: str) -> list[Term]:
    """The content terms of ``query``, in query order; at most one is the head garment."""
    vocab, taxonomy = vocabulary(), get_taxonomy()
    _, _, text = parse_price(query.lower())
    terms: list[Term] = []
    taken: list[tuple[int, int]] = []
    for m in vocab["size"].finditer(text):
        terms.append(Term(m.group().strip(), "size", m.start()))
        taken.append((m.start(), m.end()))
    for mention in taxonomy.find_mentions(text):
        if any(s < mention.end and mention.start < e for s, e in taken):
            continue
        taken.append((mention.start, mention.end))
        if mention.facet == "gender" or negated(text, mention):
            continue
        terms.append(Term(mention.surface, mention.facet, mention.start, mention.value))  # type: ignore[arg-type]
    for m in _WORD.finditer(text):
        word = m.group()
        if any(s < m.end() and m.start() < e for s, e in taken) or word in vocab["filler"] or word.isdigit() \
                or negated_at(text, m.start()):
            continue
        if word in vocab["groups"]:
            terms.append(Term(word, "group", m.start(), vocab["groups"][word]))
        elif word in vocab["generic"]:
            terms.append(Term(word, "generic", m.start()))
        elif word in vocab["head_stops"]:
            terms.append(Term(word, "word", m.start(), value="stop"))
        else:
            terms.append(Term(word, "garment" if word in vocab["fashion"] else "word", m.start()))
    terms.sort(key=lambda t: t.start)
    return _mark_head(terms, text)


def _mark_head(terms: list[Term], text: str) -> list[Term]:
    """The head: the last garment-like term before the first preposition or comma ("a wetsuit for surfing" →
    wetsuit; "hiking boots, waterproof" → boots), else the first garment-like term anywhere, else the last plain
    word before the preposition ("a coffee machine" → machine): what the shopper wants an item *to be*."""
    content = [t for t in terms if t.value != "stop"]
    breaks = [t.start for t in terms if t.value == "stop"] + ([text.find(",")] if "," in text else [])
    stop = min([b for b in breaks if any(t.start < b for t in content)], default=len(text))
    terms = content
    heads = [i for i, t in enumerate(terms) if t.kind in HEAD_KINDS]
    before = [i for i in heads if terms[i].start < stop]
    nouns = [i for i, t in enumerate(terms) if t.kind == "word" and t.start < stop]
    chosen = before[-1] if before else (heads[0] if heads else (nouns[-1] if nouns else None))
    if chosen is None:
        return terms
    head = terms[chosen]
    terms[chosen] = Term(head.text, head.kind, head.start, head.value, head=True)
    return terms


_STEMS: dict[tuple[str, str, int], set[str]] = {}


def product_stems(product: Product) -> set[str]:
    """Every stem of a product's words (title, description, catalog fields, facets); remembered per product,
    since the same products come back search after search."""
    key = (product.id, product.title, len(product.description))
    if key not in _STEMS:
        if len(_STEMS) > 100_000:
            _STEMS.clear()
        _STEMS[key] = _product_stems(product)
    return _STEMS[key]


def _product_stems(product: Product) -> set[str]:
    attributes = product.attributes or {}
    fields = [str(attributes[f]) for f in TEXT_FIELDS if attributes.get(f)]
    facets = [v for v in (product.category, product.colour, product.pattern) if v and v != UNKNOWN]
    return text_stems(" ".join([product.title, product.description, *fields, *facets]))


def type_stems(product: Product) -> set[str]:
    """The words that say what a product *is*: its catalog type, its category and the last word of its title
    ("Tuxedo leggings" is leggings, not a tuxedo)."""
    attributes = product.attributes or {}
    words = [str(attributes[f]) for f in TYPE_FIELDS if attributes.get(f)]
    title = _WORD.findall(product.title.lower())
    words += [product.category, *title[-1:]]
    return text_stems(" ".join(w for w in words if w and w != UNKNOWN))


def satisfies(term: Term, result: SearchResult, words: set[str]) -> bool:
    """Whether one result carries one term (``words``: the result's stems)."""
    if term.kind == "category":
        return result.category == term.value or (not term.head and bool(stems(term.text) & words))
    if term.kind == "group":
        return result.group == term.value
    if term.kind == "generic":
        return True
    if term.kind in ("colour", "pattern"):
        return getattr(result, term.kind) == term.value or bool(stems(term.text) & words)
    if term.kind == "size":
        return _size_stated(term.text, f"{result.title} {result.product.description if result.product else ''}")
    if term.kind in ("garment", "word") and term.head and result.product is not None:
        return bool(stems(term.text) & type_stems(result.product))
    return bool(stems(term.text) & words)


_UNITS = {"inch": r'(?:inch(?:es)?\b|in\b|")', "cm": r"cm\b", "mm": r"mm\b", "size": ""}


def _size_stated(size: str, text: str) -> bool:
    """Whether ``text`` states the same size in the same unit ("15 inch" ↔ '15"', not "15 cm")."""
    number = re.search(r"\d+(?:[.,]\d+)?|\b(?:xxs|xs|xl|xxl|xxxl|[sml])\b", size.lower())
    if number is None:
        return False
    unit = next((u for u in ("cm", "mm", "inch") if re.search(_UNITS[u], size.lower().replace('"', ' inch'))), "size")
    pattern = rf"\b{re.escape(number.group())}\s*-?\s*{_UNITS[unit]}" if unit != "size" else \
        rf"\bsize\s*{re.escape(number.group())}\b"
    return re.search(pattern, text.lower()) is not None


class Coverage(BaseModel):
    """Which content terms of a request the shown results satisfy (the products event and memory carry it).

    ``complete``: one result satisfies every term. ``unmatched``: the terms the best result (the one carrying
    the head and most terms, earliest in rank on ties) lacks: what the reply must name. ``missing``: the terms
    no result carries at all (a subset of ``unmatched``)."""

    terms: list[str] = Field(default_factory=list)
    matched: list[str] = Field(default_factory=list)
    unmatched: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    head: str | None = None
    head_matched: bool = True
    sizes: list[str] = Field(default_factory=list, description="unmatched sizes: listings rarely state them")
    best: list[int] = Field(default_factory=list, description="per result, how many terms it satisfies")

    @property
    def complete(self) -> bool:
        return not self.unmatched

    @property
    def share(self) -> float:
        return len(self.matched) / len(self.terms) if self.terms else 1.0


def cover(terms: Sequence[Term], results: Sequence[SearchResult], words: Sequence[set[str]] | None = None) -> Coverage:
    """Check every term against the results; a qualifier counts only on a result that carries the head garment,
    so a ski jacket does not make "ski boots" a match.

    Over a whole catalog (``words``: each product's precomputed ``product_stems``) it says what the catalog
    cannot satisfy at all: the label of the honesty benchmark."""
    if words is None:
        words = [product_stems(r.product) if r.product is not None else text_stems(r.title) for r in results]
    hits = [[satisfies(t, r, w) for t in terms] for r, w in zip(results, words)]
    head = next((i for i, t in enumerate(terms) if t.head), None)
    pool = [row for row in hits if head is None or row[head]] or hits
    best = max(hits, key=lambda row: (head is None or row[head], sum(row)), default=[False] * len(terms))
    unmatched = [t.text for t, ok in zip(terms, best) if not ok]
    return Coverage(terms=[t.text for t in terms], matched=[t.text for t, ok in zip(terms, best) if ok],
                    unmatched=unmatched, missing=[t.text for i, t in enumerate(terms) if not any(r[i] for r in pool)],
                    head=terms[head].text if head is not None else None,
                    head_matched=head is None or any(row[head] for row in hits),
                    sizes=[t.text for t in terms if t.kind == "size" and t.text in unmatched],
                    best=[sum(row) for row in hits])


def promote(results: list[SearchResult], coverage: Coverage) -> list[SearchResult]:
    """Results carrying more of the request first (stable, so the search order decides ties): among boots
    for "waterproof hiking boots", a hiking boot comes before fashion boots."""
    if not coverage.best or len(set(coverage.best)) == 1:
        return results
    order = sorted(range(len(results)), key=lambda i: -coverage.best[i])
    return [results[i] for i in order]
