"""Outfit completion: given catalog items and/or an uploaded photo, suggest what goes with them, slot by slot.

Which slots are missing comes from a rule table (``SLOT_RULES``: a top wants a bottom, shoes, outerwear, a bag,
an accessory; a dress fills the top and bottom slots at once, ``FILLS``). For each missing slot, candidates
come from the store under a ``where`` (group = slot, plus the session's budget, dislikes and department),
queried with the outfit's mean photo and description vectors, then re-ranked by ``CompatibilityScorer``
(``tools.outfit_model``: a set encoder with a target-slot token in the spirit of OutfitTransformer, basket
co-occurrence, embedding similarity and colour rules) and spread out so that one slot never shows five
near-identical items. A filled slot is never suggested again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from atelier.tools.encoders import Encoder
from atelier.tools.errors import InputError
from atelier.tools.outfit_model import (Compatibility, CompatibilityScorer, ItemFeatures, load_scorer, text_space_fingerprint)
from atelier.tools.outfit_rules import colour_harmony, neutral_colours
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import UNKNOWN, Product, SearchResult
from atelier.tools.store import ProductStore, product_from_metadata
from atelier.tools.taxonomy import get_taxonomy
from atelier.tools.vectors import unit_mean

log = logging.getLogger(__name__)

SLOT_RULES: dict[str, tuple[str, ...]] = {
    "top": ("bottom", "shoes", "outerwear", "bag", "accessory"),
    "bottom": ("top", "shoes", "outerwear", "bag", "accessory"),
    "full-body": ("shoes", "outerwear", "bag", "accessory", "jewellery"),
    "outerwear": ("top", "bottom", "shoes", "bag", "accessory"),
    "shoes": ("top", "bottom", "outerwear", "bag"),
    "bag": ("top", "bottom", "shoes", "outerwear"),
    "accessory": ("top", "bottom", "shoes", "bag"),
    "jewellery": ("top", "bottom", "shoes", "bag"),
    "swimwear": ("accessory", "shoes", "bag"),
    "underwear": ("socks", "nightwear"),
    "nightwear": ("socks",),
    "socks": ("shoes", "bottom"),
    "other": ("top", "bottom", "shoes"),
}
FILLS: dict[str, tuple[str, ...]] = {"full-body": ("top", "bottom")}
POOL = 100
DIVERSITY = 1.5
SLOT_SCOPED_FACETS = ("category", "group", "colour", "pattern")
UPLOAD_FACETS = ("group", "category", "colour", "pattern", "gender")


class OutfitError(InputError):
    """The outfit cannot be completed as asked; the message is safe to show to a shopper."""

    code = "outfit_unavailable"


class OutfitSlot(BaseModel):
    """One missing slot of the outfit and the catalog items suggested for it, best first."""

    group: str
    items: list[SearchResult] = Field(default_factory=list)


def filled_slots(groups: Sequence[str]) -> set[str]:
    """The slots an outfit's items occupy (a dress occupies top and bottom too)."""
    return {slot for g in groups for slot in (g, *FILLS.get(g, ()))}


def missing_slots(groups: Sequence[str]) -> list[str]:
    """The slots to complete, in the order of the first item's rule, then the others'."""
    filled = filled_slots(groups)
    wanted = [slot for g in groups for slot in SLOT_RULES.get(g, SLOT_RULES["other"])]
    return [slot for slot in dict.fromkeys(wanted) if slot not in filled]


def plausible_slots(groups: Sequence[str]) -> set[str]:
    """Every slot some item of the outfit calls for (the benchmark's slot-sanity reference)."""
    return {slot for g in groups for slot in SLOT_RULES.get(g, SLOT_RULES["other"])}


@dataclass
class OutfitItem:
    """An item of the partial outfit: a catalog product or the uploaded photo."""

    label: str
    features: ItemFeatures
    id: str | None = None
    family: str | None = None


@dataclass
class Candidate:
    product: Product
    features: ItemFeatures
    family: str
    compat: Compatibility = field(default_factory=lambda: Compatibility(0.0))


def family_of(product: Product) -> str:
    """Colour variants of one product share a family (``Product.family``; else the title)."""
    return product.family or product.title.lower()


def slot_filters(filters: SearchFilters, slot: str, gender: str | None, targeted: bool,
                 exclude: Sequence[str]) -> SearchFilters:
    """The session's constraints as they apply to one slot.

    Budget, dislikes and department carry over to every slot. Wanted categories, colours and patterns
    describe the item being shopped for, so they apply only to a slot the shopper asked for by name
    (``targeted``), and a wanted category only when it belongs to that slot.
    """
    must = {f: v for f, v in filters.must.items() if f not in SLOT_SCOPED_FACETS or (targeted and f != "group")}
    taxonomy = get_taxonomy()
    if targeted and "category" in must:
        must["category"] = [c for c in must["category"] if taxonomy.group_of(c) == slot]
        if not must["category"]:
            del must["category"]
    must["group"] = [slot]
    if "gender" not in must and gender:
        must["gender"] = [gender]
    return SearchFilters(must=must, avoid=filters.avoid, price_min=filters.price_min, price_max=filters.price_max,
                         exclude_ids=list(dict.fromkeys([*filters.exclude_ids, *exclude])))


def outfit_gender(outfit: Sequence[OutfitItem]) -> str | None:
    """The department suggestions default to: the first item's women / men / kids (unisex serves any)."""
    for item in outfit:
        if item.features.gender in ("women", "men", "kids"):
            return item.features.gender
    return None



def _label(features: ItemFeatures, fallback: str) -> str:
    words = [w for w in (features.colour, features.category if features.category != UNKNOWN else features.group)
             if w and w != UNKNOWN]
    return " ".join(words) or fallback


class OutfitCompleter:
    """Outfit completion over one store and encoder (the ``complete_outfit`` tool's engine, held by ``Runtime.completer``)."""

    def __init__(self, store: ProductStore, encoder: Encoder, scorer: CompatibilityScorer | None = None,
                 extractor: Any | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.extractor = extractor
        self.scorer = scorer if scorer is not None else load_scorer(encoder_fingerprint=text_space_fingerprint(encoder))

    def complete(self, items: Sequence[str] = (), image: Image.Image | None = None, target_group: str | None = None,
                 k: int = 5, filters: SearchFilters | None = None) -> list[OutfitSlot]:
        """Complete an outfit around catalog product ids (``items``) and/or an uploaded photo.

        One ``OutfitSlot`` per missing slot (or only ``target_group``: OutfitTransformer's "find a <slot> for this
        outfit"), each with up to ``k`` compatible catalog items whose ``why`` says why they fit. Respects
        ``filters`` (the session's budget, dislikes and department; suggestions default to the outfit's
        department). Raises ``OutfitError`` for unknown ids, an unknown or already filled ``target_group``.
        """
        if k < 1:
            raise OutfitError("k must be at least 1")
        outfit = self.catalog_items(list(items))
        if image is not None:
            outfit.append(self.upload_item(image))
        if not outfit:
            raise OutfitError("give at least one product id or a photo to build an outfit around")
        groups = [o.features.group for o in outfit]
        if target_group is not None:
            target_group = target_group.strip().lower()
            if target_group not in get_taxonomy().groups:
                raise OutfitError(f"unknown slot {target_group!r}; choose one of {', '.join(get_taxonomy().groups)}")
            if target_group in filled_slots(groups):
                raise OutfitError(f"the outfit already has a {target_group} item; remove it to get other suggestions")
            slots = [target_group]
        else:
            slots = missing_slots(groups)
        filters = filters or SearchFilters()
        gender = outfit_gender(outfit)
        exclude = [o.id for o in outfit if o.id]
        pools = [self.candidates(outfit, slot_filters(filters, slot, gender, target_group is not None, exclude))
                 for slot in slots]
        features = [o.features for o in outfit]
        scored = self.scorer.score_many([(features, slot, [c.features for c in pool])
                                         for slot, pool in zip(slots, pools)])
        result = []
        for slot, pool, compat in zip(slots, pools, scored):
            for cand, value in zip(pool, compat):
                cand.compat = value
            result.append(OutfitSlot(group=slot, items=[SearchResult.from_product(c.product, c.compat.total,
                                                                                  explain(outfit, slot, c))
                                                        for c in diversify(pool, k)]))
        return result

    def catalog_items(self, ids: list[str]) -> list[OutfitItem]:
        ids = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
        products = {p.id: p for p in self.store.get(ids)}
        unknown = [i for i in ids if i not in products]
        if unknown:
            raise OutfitError(f"unknown product id{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        text = self.store.vectors(ids, "text")
        image = self.store.vectors(ids, "image")
        out = []
        for pid in ids:
            features = features_of(products[pid], text.get(pid), image.get(pid))
            out.append(OutfitItem(_label(features, products[pid].title), features, pid, family_of(products[pid])))
        return out

    def upload_item(self, image: Image.Image) -> OutfitItem:
        """The photo as an outfit item. Each facet (group, category, colour, ...) is the more confident of two
        readings: a similarity-weighted vote of its nearest catalog photos (vote share as confidence) and
        ``tools.attributes.extract_attributes`` when that module exists. Its description vector is the mean of
        its same-group neighbours' (so the set encoder reads the same kind of vector as for catalog items)."""
        vector = self.encoder.embed_images([image])[0]
        hits = self.store.query(vector, "image", None, 25)
        if not hits:
            raise OutfitError("the catalog is empty: ingest products before asking for outfits")
        facets = {facet: _vote([(h.metadata.get(facet, UNKNOWN), h.similarity) for h in hits])
                  for facet in UPLOAD_FACETS}
        for facet, (value, confidence) in _extracted_attributes(image, self.extractor).items():
            if confidence > facets[facet][1]:
                facets[facet] = (value, confidence)
        values = {facet: value for facet, (value, _) in facets.items()}
        if values["category"] != UNKNOWN and get_taxonomy().group_of(values["category"]) != values["group"]:
            values["category"] = UNKNOWN
        same = [h.id for h in hits if h.metadata.get("group") == values["group"]][:5] or [h.id for h in hits[:5]]
        texts = list(self.store.vectors(same, "text").values())
        features = ItemFeatures(group=values["group"] if values["group"] != UNKNOWN else "other",
                                category=values["category"], colour=values["colour"], pattern=values["pattern"],
                                gender=values["gender"], text=unit_mean(texts) if texts else vector, image=vector)
        return OutfitItem(f"your {_label(features, 'photo')} photo", features)

    def candidates(self, outfit: Sequence[OutfitItem], filters: SearchFilters, pool: int = POOL) -> list[Candidate]:
        """Up to 2 x ``pool`` items of the slot near the outfit's mean photo and mean description vectors."""
        where = filters.to_where()
        excluded = set(filters.exclude_ids)
        families = {o.family for o in outfit if o.family}
        found: dict[str, dict] = {}
        for kind in ("image", "text"):
            vectors = [getattr(o.features, kind) for o in outfit if getattr(o.features, kind) is not None]
            if not vectors:
                continue
            for hit in self.store.query(unit_mean(vectors), kind, where, pool + len(excluded)):
                if hit.id not in excluded and filters.matches(hit.metadata):
                    found.setdefault(hit.id, hit.metadata)
        ids = sorted(found)
        text = self.store.vectors(ids, "text")
        image = self.store.vectors(ids, "image")
        out = []
        for pid in ids:
            product = product_from_metadata(found[pid])
            if family_of(product) in families:
                continue
            out.append(Candidate(product, features_of(product, text.get(pid), image.get(pid)), family_of(product)))
        return out


def features_of(product: Product, text: np.ndarray | None, image: np.ndarray | None) -> ItemFeatures:
    return ItemFeatures(group=product.group, category=product.category, colour=product.colour,
                        pattern=product.pattern, gender=product.gender, text=text, image=image)


def diversify(pool: Sequence[Candidate], k: int) -> list[Candidate]:
    """Greedy maximal-marginal-relevance pick: score minus DIVERSITY x the highest photo similarity to an
    item already picked; one item per product family (no colour variants of the same piece)."""
    remaining = sorted(pool, key=lambda c: (-c.compat.total, c.product.id))
    picked: list[Candidate] = []
    families: set[str] = set()
    while remaining and len(picked) < k:
        best, best_value = None, -np.inf
        for cand in remaining:
            if cand.family in families:
                continue
            sims = [float(np.dot(cand.features.image, p.features.image)) for p in picked
                    if cand.features.image is not None and p.features.image is not None]
            value = cand.compat.total - DIVERSITY * max(sims, default=0.0)
            if value > best_value + 1e-12:
                best, best_value = cand, value
        if best is None:
            break
        picked.append(best)
        families.add(best.family)
        remaining.remove(best)
    return picked


def explain(outfit: Sequence[OutfitItem], slot: str, cand: Candidate) -> str:
    """A short, factual reason: the slot it fills, the colour logic, the basket evidence, the similarities."""
    anchor = outfit[0]
    reasons = [f"{slot} for {', '.join(o.label for o in outfit)}"]
    colour, other = cand.features.colour, anchor.features.colour
    harmony = colour_harmony(other, colour)
    if colour in neutral_colours() and colour != UNKNOWN:
        reasons.append(f"{colour} is a neutral that goes with everything")
    elif other in neutral_colours():
        reasons.append(f"{colour} on a neutral {other} base")
    elif colour == other and colour != UNKNOWN:
        reasons.append(f"tonal {colour} look")
    elif harmony > 0:
        reasons.append(f"{other} and {colour} is a classic pairing")
    parts = cand.compat.parts
    if parts.get("cooc", 0.0) > 0.2:
        reasons.append(f"often bought with {anchor.features.category if anchor.features.category != UNKNOWN else anchor.features.group}"
                       f" items in H&M baskets (lift x{np.exp(parts['cooc']):.1f})")
    sims = [f"style match {parts.get('style', 0.0):.2f}"]
    if "model" in parts:
        sims.append(f"outfit model {parts['model']:.2f}")
    reasons.append(", ".join(sims))
    return "; ".join(reasons)


def _vote(pairs: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The value with the most similarity weight, and its share of the weight."""
    tally: dict[str, float] = {}
    for value, weight in pairs:
        if value and value != UNKNOWN:
            tally[value] = tally.get(value, 0.0) + max(weight, 0.0)
    total = sum(tally.values())
    if not tally or total <= 0:
        return UNKNOWN, 0.0
    best = min(tally, key=lambda v: (-tally[v], v))
    return best, tally[best] / total


def _extracted_attributes(image: Image.Image, extractor: Any | None = None,
                          min_confidence: float = 0.5) -> dict[str, tuple[str, float]]:
    """Confident facets of an uploaded photo from ``tools.attributes`` (a hint: a failure gives {})."""
    from atelier.tools.attributes import AttributeExtractor

    try:
        found = (extractor or AttributeExtractor()).predict_images([image])[0] or {}
    except Exception as exc:  # noqa: BLE001  (attribute extraction is a hint, never a failure)
        log.warning("attribute extraction failed (%s); using nearest catalog photos", exc)
        return {}
    out = {}
    for facet in UPLOAD_FACETS:
        entry = found.get(facet)
        if entry is None:
            continue
        value = entry.get("value") if isinstance(entry, dict) else getattr(entry, "value", None)
        confidence = entry.get("confidence", 0.0) if isinstance(entry, dict) else getattr(entry, "confidence", 0.0)
        if value and value != UNKNOWN and float(confidence or 0.0) >= min_confidence:
            out[facet] = (str(value), float(confidence))
    return out
