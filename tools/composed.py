"""Composed image search: a reference (a product or a photo) plus a change in words — "like this but in black",
"with stripes instead", "without the print", "same but for men", "cheaper", "longer".

Training-free and two-stage, after CIReVL (Karthik et al. 2024: describe the reference, apply the change to the
description, retrieve with the edited description) and SoFT (must-have / must-avoid constraints):

1. describe the reference as attributes — the catalog's fields for a product, ``extract_attributes`` for a photo;
2. read the change as constraints with the shared taxonomy (a new colour replaces the old one, "without the
   print" avoids print, "for men" sets gender, "cheaper" caps the price below the reference's) and as soft
   detail wishes (longer, long sleeves, looser), and write the target's description;
3. coarse: gather candidates under the hard constraints by the reference photo's similarity (keeps shape and
   style) and the target description's similarity to photos and product texts;
4. re-rank: a weighted sum of the three similarities plus attribute agreement (same category as the reference
   unless the change names another, detail wishes that candidate descriptions confirm or contradict).

The reference itself is never returned; each result's ``why`` says what it kept and what it changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from atelier.tools.candidates import CandidateIndex
from atelier.tools.errors import InputError
from atelier.tools.lexicon import (
    alternation,
    in_negation_scope,
    negation_before,
    phrases,
    relative_patterns,
    shopper_vocabulary,
)
from atelier.tools.query_parser import SearchFilters, parse_price
from atelier.tools.recognition import Recogniser, strip_border
from atelier.tools.schema import UNKNOWN, Product, SearchResult
from atelier.tools.store import Hit, product_metadata
from atelier.tools.taxonomy import Taxonomy, get_taxonomy
from atelier.tools.variants import VariantProjection, load_projection

FACETS = ("category", "colour", "pattern", "gender")


@dataclass(frozen=True)
class ChangeVocabulary:
    """Compiled change words: negation before a facet, cheaper / pricier, "without the print", detail wishes."""

    negation: re.Pattern[str]
    cheaper: re.Pattern[str]
    pricier: re.Pattern[str]
    patternless: re.Pattern[str]
    details: dict[str, list[tuple[re.Pattern[str], str, str]]]

    @classmethod
    def load(cls) -> ChangeVocabulary:
        words = shopper_vocabulary()
        composed = words["composed"]
        relative = relative_patterns()
        removal = alternation(composed["patternless_verbs"])
        pattern = alternation(composed["pattern_words"])
        determiner = alternation(words["details"]["negated_determiners"], strict=False)
        patternless = rf"{removal}\s+(?:{determiner}\s+)?{pattern}|{alternation(composed['plain'])}"
        details = {attribute: [(phrases(spec["words"]), value, spec["phrase"]) for value, spec in values.items()]
                   for attribute, values in composed["details"].items()}
        return cls(negation=negation_before(), cheaper=relative["cheaper"], pricier=relative["pricier"],
                   patternless=re.compile(patternless), details=details)


@lru_cache(maxsize=1)
def change_vocabulary() -> ChangeVocabulary:
    """The change words of ``prompts/vocabulary.yaml`` (negations and cheaper/pricier shared with the parser)."""
    return ChangeVocabulary.load()


@dataclass(frozen=True)
class Weights:
    """Re-ranking weights (tuned on non-test H&M variant pairs by ``benchmarks/bench_composed.py --tune``)."""

    image: float = 1.0
    target_image: float = 0.5
    target_text: float = 0.5
    attributes: float = 0.15
    pool: int = 200


DEFAULT_WEIGHTS = Weights()


class Reference(BaseModel):
    """What the reference is, as composed search sees it: attributes, a photo vector, and where it came from."""

    model_config = {"arbitrary_types_allowed": True}

    id: str | None = None
    kind: str = "product"  # "product" (a catalog item), "recognised" (a photo of one), "photo" (anything else)
    title: str = ""
    description: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    details: dict[str, str] = Field(default_factory=dict)  # sleeves, length... predicted from a photo
    family: str | None = None
    price: float | None = None
    vector: Any = None  # np.ndarray, the reference photo's embedding


class Change(BaseModel):
    """The change request read as hard constraints, soft detail wishes, and the words describing the target."""

    text: str
    filters: SearchFilters = Field(default_factory=SearchFilters)
    target: dict[str, str] = Field(default_factory=dict)
    details: dict[str, str] = Field(default_factory=dict)
    detail_words: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)

    def description(self, reference: Reference) -> str:
        """The target's description in the catalog's own text style: name, type, colour, pattern, details."""
        attrs = {k: v for k, v in self.target.items() if v and v != UNKNOWN}
        head = " ".join(attrs.get(f, "") for f in ("colour", "pattern") if attrs.get(f, "") not in ("", "solid"))
        noun = attrs.get("category", "") or "item"
        who = {"women": "for women", "men": "for men", "kids": "for kids"}.get(attrs.get("gender", ""), "")
        parts = [" ".join(w for w in (head, noun, who) if w)]
        title = _strip_changed(reference.title, self.changed) if reference.title else ""
        if title:
            parts.insert(0, title)
        facts = ", ".join(v for f in ("category", "colour", "pattern") if (v := attrs.get(f)))
        if facts:
            parts.append(facts)
        if self.detail_words:
            parts.append(", ".join(self.detail_words))
        return ". ".join(p for p in parts if p) + "."


def _strip_changed(text: str, changed: list[str], taxonomy: Taxonomy | None = None) -> str:
    """``text`` without words of the facets the change replaces (the old colour must not pull the search back)."""
    return (taxonomy or get_taxonomy()).strip(text, tuple(f for f in changed if f in FACETS))


def parse_change(text: str, reference: Reference, taxonomy: Taxonomy | None = None) -> Change:
    """Read a change request against the reference's attributes (SoFT-style must / avoid, plus soft details)."""
    taxonomy = taxonomy or get_taxonomy()
    vocab = change_vocabulary()
    low, high, rest = parse_price(text)
    rest = rest.lower()
    must: dict[str, list[str]] = {}
    avoid: dict[str, list[str]] = {}
    mentions = taxonomy.find_mentions(rest)
    spans = [(m.start, m.end) for m in mentions]
    for mention in mentions:
        if mention.facet == "pattern" and vocab.patternless.search(rest[max(0, mention.start - 12): mention.end + 1]):
            continue
        negated = bool(vocab.negation.search(rest[max(0, mention.start - 24): mention.start])) or in_negation_scope(
            rest, mention.start, spans)
        target = avoid if negated else must
        if mention.value not in target.setdefault(mention.facet, []):
            target[mention.facet].append(mention.value)
    if vocab.patternless.search(rest):
        old = reference.attributes.get("pattern", UNKNOWN)
        avoid.setdefault("pattern", []).extend(p for p in ("print", old) if p not in (UNKNOWN, "solid"))
        must["pattern"] = ["solid"]
    for facet, values in avoid.items():
        if facet in must:
            must[facet] = [v for v in must[facet] if v not in values]
    must = {f: v for f, v in must.items() if v}
    avoid = {f: list(dict.fromkeys(v)) for f, v in avoid.items() if v}
    price = reference.price
    if price is not None and high is None and vocab.cheaper.search(rest):
        high = round(price * 0.97, 2)
    if price is not None and low is None and vocab.pricier.search(rest):
        low = round(price * 1.03, 2)
    target = {f: v for f, v in reference.attributes.items() if f in FACETS}
    for facet in FACETS:
        if facet in must:
            target[facet] = must[facet][0]
        elif facet in avoid and target.get(facet) in avoid[facet]:
            target[facet] = UNKNOWN
    details: dict[str, str] = {}
    words: list[str] = []
    for attribute, rules in vocab.details.items():
        for pattern, value, phrase in rules:
            if pattern.search(rest) and attribute not in details:
                details[attribute] = value
                words.append(phrase)
    changed = [f for f in FACETS if f in must or f in avoid] + list(details)
    if low is not None or high is not None:
        changed.append("price")
    for attribute, value in reference.details.items():
        details.setdefault(attribute, value)
    return Change(text=text, filters=SearchFilters(must=must, avoid=avoid, price_min=low, price_max=high),
                  target=target, details=details, detail_words=words, changed=changed)


@dataclass
class Scored:
    hit: Hit
    product: Product
    parts: dict[str, float] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    score: float = 0.0


@lru_cache(maxsize=1)
def _detail_rules() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    from atelier.tools.attributes import load_attribute_config

    specs = load_attribute_config().specs
    return {name: [(v, re.compile("|".join(p), re.IGNORECASE)) for v, p in spec.from_text.items()]
            for name, spec in specs.items() if spec.from_text}


def detail_agreement(description: str, details: dict[str, str]) -> tuple[float, list[str]]:
    """+1 per wished detail the candidate's description states, -1 per one it contradicts."""
    rules = _detail_rules()
    score, said = 0.0, []
    for attribute, wanted in details.items():
        stated = {v for v, rx in rules.get(attribute, []) if rx.search(description or "")}
        if wanted in stated:
            score += 1.0
            said.append(f"{attribute}={wanted}")
        elif stated:
            score -= 1.0
    return score, said


PHOTO_DETAILS = ("sleeves", "length", "neckline")


def strip_border_embedding(encoder: Any, image: Image.Image) -> np.ndarray:
    """The photo's image embedding once a screenshot's frame is gone (the frame would colour the embedding)."""
    return encoder.embed_images([strip_border(image)])[0]


def photo_reference(vector: np.ndarray, extractor: Any) -> Reference:
    """A photo that is no catalog item, described by the attribute heads: category, colour, pattern, gender, and
    the visible details (sleeves, length, neckline) that a colour or pattern change keeps."""
    predicted = extractor.predict_features(vector[None, :])[0]
    details = {a: predicted[a].value for a in PHOTO_DETAILS if a in predicted and predicted[a].value != UNKNOWN}
    return Reference(kind="photo", attributes={f: predicted[f].value for f in FACETS if f in predicted},
                     details=details, vector=vector)


class ComposedSearch:
    """Composed retrieval over one index with one encoder.

    An uploaded photo is first looked up in the catalog (``tools.recognition``): a recognised item is searched
    from its listing, like a shown product. Any catalog reference brings its variant family: the family's members
    that satisfy the change rank first. A photo that is no catalog item keeps its garment through the
    variant-invariant part of its embedding (``tools.variants``) when the change is a colour or pattern.
    """

    def __init__(self, index: CandidateIndex, encoder: Any, weights: Weights = DEFAULT_WEIGHTS,
                 hard_constraints: bool = True, recognise: bool = True, families: bool = True,
                 projection: VariantProjection | None | bool = True, extractor: Any | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.weights = weights
        self.hard_constraints = hard_constraints
        self.families = families
        self.recogniser = Recogniser(index, encoder) if recognise else None
        if projection is True:
            from atelier.tools.encoders import encoder_fingerprint

            projection = load_projection(encoder_fingerprint(encoder))
        self.projection = projection or None
        self._extractor = extractor

    @property
    def extractor(self) -> Any:
        """The attribute extractor that reads an uploaded reference photo (the runtime's, or one of its own)."""
        if self._extractor is None:
            from atelier.tools.attributes import AttributeExtractor

            self._extractor = AttributeExtractor(self.encoder)
        return self._extractor

    def reference(self, reference: str | Image.Image) -> Reference:
        """A product id (or a path to a photo) or an uploaded photo, described as attributes plus a vector."""
        if isinstance(reference, str):
            product = self.index.get_product(reference)
            if product is not None:
                return self.product_reference(product)
            from pathlib import Path

            from atelier.tools.images import load_image

            if not Path(reference).is_file():
                raise InputError(f"unknown product id or image file: {reference!r}",
                                 public_message="That is neither a product in the catalog nor a readable photo.")
            reference = load_image(reference)
        return self.photo(reference)

    def photo(self, image: Image.Image, vector: np.ndarray | None = None) -> Reference:
        """An uploaded photo: the catalog item it shows when recognised, else its predicted attributes + vector."""
        vector = strip_border_embedding(self.encoder, image) if vector is None else vector
        if self.recogniser is not None:
            found = self.recogniser.recognise(image, vector)
            if found.product is not None:
                return self.product_reference(found.product, kind="recognised")
        return photo_reference(vector, self.extractor)

    def product_reference(self, product: Product, kind: str = "product") -> Reference:
        vector = self.index.vectors([product.id], "image").get(product.id)
        return Reference(id=product.id, kind=kind, title=product.title, description=product.description,
                         attributes={f: getattr(product, f) for f in FACETS}, family=product.family,
                         price=product.price, vector=vector)

    def search(self, reference: str | Image.Image | Reference, change: str, k: int = 10,
               filters: SearchFilters | None = None) -> list[SearchResult]:
        ref = reference if isinstance(reference, Reference) else self.reference(reference)
        request = parse_change(change, ref)
        hard = (filters or SearchFilters()).merged(request.filters if self.hard_constraints else SearchFilters())
        if ref.id:
            hard = hard.merged(SearchFilters(exclude_ids=[ref.id]))
        target_text = request.description(ref)
        target = self.encoder.embed_texts([target_text])[0]
        ranked = self.rank(ref, request, target, hard, k)
        relaxed = False
        if len(ranked) < k and (hard.must or hard.avoid):
            soft_only = SearchFilters(price_min=hard.price_min, price_max=hard.price_max, exclude_ids=hard.exclude_ids
                                      + [s.product.id for s in ranked])
            ranked += self.rank(ref, request, target, soft_only, k - len(ranked))
            relaxed = True
        return [SearchResult.from_product(s.product, s.score, self._why(s, ref, request, hard, relaxed))
                for s in ranked[:k]]

    def shape_vector(self, ref: Reference, request: Change) -> np.ndarray | None:
        """The photo's variant-invariant vector when its colour or pattern is what changes (photos only: a
        catalog reference keeps its garment through its listing and family)."""
        if ref.kind != "photo" or ref.vector is None or self.projection is None:
            return None
        if not {"colour", "pattern"} & set(request.changed):
            return None
        return self.projection.apply(ref.vector)[0]

    def family(self, ref: Reference, request: Change) -> str | None:
        """The reference's variant family when the change is one a variant can satisfy (a colour or pattern)."""
        variant_change = bool({"colour", "pattern"} & set(request.changed))
        return ref.family if self.families and variant_change else None

    def gather(self, ref: Reference, target: np.ndarray, shape: np.ndarray | None, hard: SearchFilters,
               family: str | None) -> dict[str, Hit]:
        """Coarse candidates under ``hard``: the reference photo's neighbours (by shape when colour or pattern
        changes), the target description's neighbours among photos and texts, and the reference's family."""
        pool: dict[str, Hit] = {}
        queries = [(target, "image"), (target, "text")]
        if ref.vector is not None:
            queries.insert(0, (shape if shape is not None else np.asarray(ref.vector, np.float32), "image"))
        for vector, kind in queries:
            for hit in self.index.query(vector, kind, hard, self.weights.pool):
                pool.setdefault(hit.id, hit)
        for pid in self.index.family_members(family) if family else []:
            product = None if pid in pool or pid in hard.exclude_ids else self.index.get_product(pid)
            if product is not None and hard.matches(meta := product_metadata(product, "")):
                pool[pid] = Hit(pid, 0.0, meta)
        return pool

    def rank(self, ref: Reference, request: Change, target: np.ndarray, hard: SearchFilters,
             k: int) -> list[Scored]:
        """Coarse candidates under ``hard`` re-ranked, the reference's family first; the best ``k``."""
        w = self.weights
        shape = self.shape_vector(ref, request)
        family = self.family(ref, request)
        pool = self.gather(ref, target, shape, hard, family)
        if not pool:
            return []
        ids = list(pool)
        images = self.index.vectors(ids, "image")
        texts = self.index.vectors(ids, "text")
        scored = []
        for pid in ids:
            hit = pool[pid]
            product = self.index.product(hit)
            s = Scored(hit, product)
            if shape is not None and self.projection is not None and pid in images:
                s.parts["shape"] = float(self.projection.apply(images[pid])[0] @ shape)
            elif ref.vector is not None and pid in images:
                s.parts["photo"] = float(images[pid] @ ref.vector)
            if pid in images:
                s.parts["target_photo"] = float(images[pid] @ target)
            if pid in texts:
                s.parts["target_text"] = float(texts[pid] @ target)
            if family and product.family == family:
                s.parts["family"] = 1.0
            agree = 0.0
            for facet in ("category", "gender", "pattern", "colour"):
                wanted = request.target.get(facet, UNKNOWN)
                if wanted != UNKNOWN and getattr(product, facet) == wanted:
                    agree += 1.0
                    s.kept.append(f"{facet}={wanted}")
            detail, s.details = detail_agreement(product.description, request.details)
            s.parts["attributes"] = agree + detail
            photo = s.parts.get("photo", s.parts.get("shape", 0.0))
            s.score = (w.image * photo + w.target_image * s.parts.get("target_photo", 0.0)
                       + w.target_text * s.parts.get("target_text", 0.0) + w.attributes * s.parts["attributes"])
            scored.append(s)
        scored.sort(key=lambda x: (-x.parts.get("family", 0.0), -x.score))
        return scored[:k]

    @staticmethod
    def _why(s: Scored, ref: Reference, request: Change, hard: SearchFilters, relaxed: bool) -> str:
        parts = []
        asked = [f"{f}={v}" for f in hard.must if f in FACETS and (v := getattr(s.product, f)) in hard.must[f]]
        asked += [k for k in s.kept if k.split("=")[0] in request.changed and k not in asked]
        if asked:
            parts.append("changed as asked: " + ", ".join(asked))
        if hard.avoid:
            parts.append("avoids " + ", ".join(f"{f}≠{'/'.join(v)}" for f, v in hard.avoid.items()))
        if hard.price_max is not None or hard.price_min is not None:
            bound = f"below {hard.price_max:g}" if hard.price_max is not None else f"above {hard.price_min:g}"
            parts.append(f"price {s.product.price:g} {bound}" if s.product.price is not None else f"price {bound}")
        if s.parts.get("family"):
            parts.append("the same piece as the " + ("item in your photo" if ref.kind == "recognised" else "reference")
                         + " in another variant")
        kept = [k for k in s.kept if k.split("=")[0] not in request.changed]
        if kept:
            parts.append("same as the reference: " + ", ".join(kept))
        if s.details:
            parts.append("description confirms " + ", ".join(s.details))
        sims = {"photo": "photo similarity", "shape": "shape similarity (colour and pattern left out)",
                "target_photo": "looks like the target",
                "target_text": "description matches the target"}
        parts.append("; ".join(f"{label} {s.parts[key]:.2f}" for key, label in sims.items() if key in s.parts))
        if relaxed and not hard.matches(s.hit.metadata):
            parts.append("closest match without the exact constraints")
        return "; ".join(p for p in parts if p)
