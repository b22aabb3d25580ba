"""Questions about one product: answered from its listing when it is a catalog product, from the photo when it is
an upload — and "the listing doesn't say" rather than a guess.

Grounded, extractive QA in the spirit of FashionVQA's question taxonomy (colour, pattern, material, fit, type,
...): first the question type, by keyword rules (``prompts/vqa.yaml`` plus the taxonomy's values) with MiniLM
similarity to exemplar questions breaking ties and catching paraphrases; then the answer, from a catalog field
(colour, pattern, price, department, type) or from the description sentence that states it (material, fit,
neckline, sleeves, length, care), which is returned as ``source``. A listing that states nothing on the matter
gives ``answerable=False`` — hallucinated attributes are the failure shoppers trust least. Photos are answered
through ``extract_attributes``, whose calibrated confidence becomes the answer's, "unknown" saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from pydantic import BaseModel

from atelier.tools.attributes import AttributeExtractor, AttributePrediction
from atelier.tools.errors import InputError
from atelier.tools.schema import UNKNOWN, Product
from atelier.tools.settings import PROMPTS_DIR
from atelier.tools.taxonomy import get_taxonomy

YES_NO = re.compile(r"^\s*(?:is|are|does|do|can|could|has|have|will|would|was)\b", re.I)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
TAXONOMY_TYPES = {"colour": "colour", "pattern": "pattern", "category": "category", "gender": "gender"}
LABELS = {"colour": "what colour it is", "pattern": "whether it has a pattern", "material": "what it is made of",
          "fit": "how it fits", "neckline": "what neckline it has", "sleeves": "what sleeves it has",
          "length": "how long it is", "care": "how to care for it", "price": "its price",
          "gender": "who it is for", "category": "what kind of item it is", "size": "which sizes it comes in",
          "other": "that"}
CANONICAL = {"short-sleeved": "short sleeves", "long-sleeved": "long sleeves", "round neck": "round neckline",
             "crew neck": "round neckline", "machine washable": "machine wash"}
SOURCE_FIELDS = {"colour": ("colour_group_name", "baseColour"), "pattern": ("graphical_appearance_name",),
                 "category": ("product_type_name", "articleType"), "gender": ("index_group_name", "department_name")}


class Answer(BaseModel):
    """An answer with where it came from; ``answerable`` is False when neither listing nor photo says."""

    answer: str
    source: str | None = None
    confidence: float
    answerable: bool
    question_type: str = "other"


@dataclass(frozen=True)
class QuestionType:
    name: str
    rules: list[re.Pattern[str]]
    exemplars: list[str]
    words: list[str]
    visual: str | None
    not_before: re.Pattern[str] | None = None

    def phrases(self, text: str) -> list[str]:
        """This type's listing words found in ``text``, in text order, longest match first, without overlaps
        (and, for materials, not where the word names a part: "metal buckle", "buttons down the front")."""
        found, taken = [], []
        for word in sorted(self.words, key=len, reverse=True):
            for m in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.I):
                if any(s < m.end() and m.start() < e for s, e in taken):
                    continue
                if self.not_before is not None and self.not_before.match(text, m.end()):
                    continue
                taken.append((m.start(), m.end()))
                word = m.group(0).lower()
                found.append((m.start(), CANONICAL.get(word, word)))
        return list(dict.fromkeys(w for _, w in sorted(found)))


@dataclass(frozen=True)
class VqaConfig:
    types: dict[str, QuestionType]
    min_similarity: float


@lru_cache(maxsize=1)
def load_vqa_config(path: Path | None = None) -> VqaConfig:
    data = yaml.safe_load((path or PROMPTS_DIR / "vqa.yaml").read_text())
    types = {name: QuestionType(name, [re.compile(r, re.I) for r in spec.get("rules", [])],
                                list(spec.get("exemplars", [])), list(spec.get("words", [])), spec.get("visual"),
                                re.compile(spec["not_before"], re.I) if spec.get("not_before") else None)
             for name, spec in data["types"].items()}
    return VqaConfig(types, float(data["min_similarity"]))


def _text_model():
    from atelier.tools.encoders.minilm import shared_minilm

    return shared_minilm()


@lru_cache(maxsize=1)
def _exemplar_matrix() -> tuple[list[str], np.ndarray]:
    config = load_vqa_config()
    names = [name for name, t in config.types.items() for _ in t.exemplars]
    texts = [e for t in config.types.values() for e in t.exemplars]
    return names, _text_model().encode(texts)


def similar_types(question: str) -> dict[str, float]:
    """Each type's best MiniLM cosine between ``question`` and its exemplar questions."""
    names, matrix = _exemplar_matrix()
    vector = _text_model().encode([question])[0]
    best: dict[str, float] = {}
    for name, sim in zip(names, matrix @ vector):
        best[name] = max(best.get(name, -1.0), float(sim))
    return best


def rule_types(question: str) -> list[str]:
    """Question types whose keyword rules fire, plus the facets of taxonomy values it names ("is it black?")."""
    config = load_vqa_config()
    hits = [name for name, t in config.types.items() if any(r.search(question) for r in t.rules)]
    for mention in get_taxonomy().find_mentions(question):
        name = TAXONOMY_TYPES[mention.facet]
        if name not in hits:
            hits.append(name)
    return hits


def classify_question(question: str) -> tuple[str, float]:
    """(type, confidence): one firing rule decides; several or none are settled by exemplar similarity."""
    hits = rule_types(question)
    if len(hits) == 1:
        return hits[0], 0.95
    sims = similar_types(question)
    if hits:
        best = max(hits, key=lambda h: sims.get(h, -1.0))
        return best, 0.85
    best = max(sims, key=sims.get)
    if sims[best] < load_vqa_config().min_similarity:
        return "other", round(1.0 - sims[best], 3)
    return best, round(sims[best], 3)


def sentences(product: Product) -> list[str]:
    text = " ".join(t for t in (product.description,) if t)
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]


def _raw(product: Product, kind: str) -> tuple[str, str] | None:
    for name in SOURCE_FIELDS.get(kind, ()):
        value = product.attributes.get(name)
        if isinstance(value, str) and value:
            return name, value
    return None


def is_yes_no(question: str, asked: list[str]) -> bool:
    """A yes/no question about one named value ("is it black?"), not a choice ("is it for men or women?")."""
    return bool(YES_NO.search(question)) and len(set(asked)) == 1


def _asked(question: str, facet: str) -> list[str]:
    return [m.value for m in get_taxonomy().find_mentions(question, (facet,))]


def _not_stated(kind: str, confidence: float) -> Answer:
    return Answer(answer=f"The listing doesn't say {LABELS.get(kind, 'that')}.", source=None,
                  confidence=confidence, answerable=False, question_type=kind)


def _facet_answer(product: Product, question: str, kind: str, confidence: float) -> Answer:
    """Colour, pattern, category, gender: a catalog field, checked against the value asked about if any."""
    value = getattr(product, kind)
    raw = _raw(product, kind)
    if value in (UNKNOWN, "", None) and raw is None:
        return _not_stated(kind, confidence)
    said = raw[1] if raw else value
    source = f"{raw[0]}: {raw[1]}" if raw else f"{kind}: {value}"
    if kind == "gender":
        said = {"women": "women", "men": "men", "kids": "kids", "unisex": "anyone (unisex)"}.get(value, said)
        if raw and raw[0] == "index_group_name":
            said = f"{said} ({raw[1]})"
    shown = said.lower() if kind in ("colour", "pattern", "category") else said
    asked = _asked(question, kind)
    if is_yes_no(question, asked) and value not in (UNKNOWN, "", None):
        ok = value in asked or (kind == "gender" and value == "unisex" and bool({"men", "women"} & set(asked)))
        body = {"category": f"it's a {shown}", "gender": f"it's for {shown}"}.get(kind, f"it's {shown}")
        return Answer(answer=f"{'Yes' if ok else 'No'}, {body}.", source=source, confidence=confidence,
                      answerable=True, question_type=kind)
    text = {"colour": "It's {}.", "pattern": "Its pattern is {}.", "category": "It's a {}.",
            "gender": "It's for {}."}[kind].format(shown)
    return Answer(answer=text, source=source, confidence=confidence, answerable=True, question_type=kind)


def _pattern_answer(product: Product, question: str, kind: str, confidence: float) -> Answer:
    if product.pattern not in (UNKNOWN, "", None) or _raw(product, "pattern"):
        return _facet_answer(product, question, kind, confidence)
    for sentence in [*sentences(product), product.title]:
        found = get_taxonomy().find_mentions(sentence, ("pattern",))
        if found:
            return Answer(answer=f"Its pattern is {found[0].surface.lower()}.", source=sentence,
                          confidence=round(confidence * 0.9, 3), answerable=True, question_type=kind)
    return _not_stated(kind, confidence)


VISUAL_PHRASES = {"category": "it looks like a {}", "colour": "it looks {}", "pattern": "its pattern looks {}",
                  "gender": "it looks like it's for {}", "neckline": "it looks like it has a {}"}
VISUAL_VALUES = {("sleeves", "long"): "long-sleeved", ("sleeves", "short"): "short-sleeved",
                 ("length", "knee"): "knee-length", ("length", "midi"): "calf-length",
                 ("neckline", "round"): "round neckline", ("neckline", "high"): "high neck",
                 ("fit", "slim"): "slim fit", ("fit", "regular"): "regular fit", ("fit", "loose"): "loose fit"}
CANONICAL_DETAILS = {"long sleeves": "long", "short sleeves": "short", "sleeveless": "sleeveless",
                     "knee-length": "knee", "calf-length": "midi", "midi": "midi", "maxi": "long", "ankle-length": "long",
                     "full-length": "long", "mini": "short", "short": "short", "long": "long", "v-neck": "v-neck",
                     "round neckline": "round", "collar": "collar", "hood": "hood", "turtleneck": "high",
                     "high neck": "high", "slim fit": "slim", "skinny": "slim", "fitted": "slim",
                     "regular fit": "regular", "loose fit": "loose", "oversized": "loose", "loose": "loose",
                     "relaxed fit": "loose"}
AGGREGATED = {"material"}
PHRASING: dict[str, str] = {"material": "It's made of {}.", "fit": "The listing describes the fit as {}.",
                            "neckline": "It has a {}.", "sleeves": "It has {}.", "length": "It's {}.",
                            "care": "The listing says: {}"}


def _sentence_answer(product: Product, question: str, kind: str, confidence: float) -> Answer:
    """Material, fit, neckline, sleeves, length, care: the description sentence(s) that state it (for material,
    every sentence that names one: "Jacket in woven fabric. … Padding 100% polyester.")."""
    qtype = load_vqa_config().types[kind]
    found: list[str] = []
    sources: list[str] = []
    for sentence in [*sentences(product), product.title]:
        phrases = [p for p in qtype.phrases(sentence) if p not in found]
        if not phrases:
            continue
        found += phrases
        sources.append(sentence)
        if kind not in AGGREGATED or len(found) >= 3:
            break
    if not found:
        return _not_stated(kind, confidence)
    if kind == "care":
        text = PHRASING[kind].format(sources[0])
    elif kind == "sleeves" and found[0] == "sleeveless":
        text = "It's sleeveless."
    else:
        text = PHRASING[kind].format(" and ".join(found[:3]))
    asked = qtype.phrases(question)
    if is_yes_no(question, asked) and kind != "care":
        text = (f"Yes — {text[0].lower()}{text[1:]}" if asked[0] in found
                else f"The listing doesn't say it's {asked[0]}; {text[0].lower()}{text[1:]}")
    return Answer(answer=text, source=" … ".join(sources), confidence=confidence, answerable=True,
                  question_type=kind)


def _price_answer(product: Product, question: str, kind: str, confidence: float) -> Answer:
    if product.price is None:
        return _not_stated(kind, confidence)
    amount = f"{product.price:.2f}" + (f" {product.currency}" if product.currency else "")
    return Answer(answer=f"It costs {amount}.", source=f"price: {product.price:g}", confidence=confidence,
                  answerable=True, question_type=kind)


LISTING_ANSWERERS: dict[str, Callable[[Product, str, str, float], Answer]] = {
    "colour": _facet_answer, "category": _facet_answer, "gender": _facet_answer, "pattern": _pattern_answer,
    "material": _sentence_answer, "fit": _sentence_answer, "neckline": _sentence_answer,
    "sleeves": _sentence_answer, "length": _sentence_answer, "care": _sentence_answer, "price": _price_answer,
}


def answer_from_listing(product: Product, question: str) -> Answer:
    """Answer from the product's fields and description only; never from what it probably is."""
    kind, confidence = classify_question(question)
    answerer = LISTING_ANSWERERS.get(kind)
    if answerer is None:
        return _not_stated(kind, confidence)
    return answerer(product, question, kind, confidence)


def answer_from_photo(image: Image.Image, question: str,
                      predictions: dict[str, AttributePrediction] | None = None,
                      extractor: AttributeExtractor | None = None) -> Answer:
    """Visual questions (colour, pattern, type, sleeves, length, ...) through the attribute ``extractor``
    (the runtime's; ``predictions`` reuses an earlier extraction of the same photo)."""
    kind, confidence = classify_question(question)
    attribute = load_vqa_config().types[kind].visual if kind in load_vqa_config().types else None
    if attribute is None:
        return Answer(answer=f"I can't tell {LABELS.get(kind, 'that')} from a photo alone.", source=None,
                      confidence=round(confidence, 3), answerable=False, question_type=kind)
    if predictions is None:
        predictions = (extractor or AttributeExtractor()).predict_images([image])[0]
    pred = predictions.get(attribute)
    if pred is None:
        return Answer(answer=f"That doesn't apply to what's in this photo, so I can't tell {LABELS[kind]}.",
                      source=None, confidence=round(confidence, 3), answerable=False, question_type=kind)
    if pred.value == UNKNOWN:
        return Answer(answer=f"I can't tell {LABELS[kind]} from this photo with confidence.", source=None,
                      confidence=pred.confidence, answerable=False, question_type=kind)
    body = VISUAL_PHRASES.get(attribute, "it looks {}").format(
        VISUAL_VALUES.get((attribute, pred.value), pred.value))
    asked = _asked(question, attribute) if attribute in TAXONOMY_TYPES.values() else \
        [CANONICAL_DETAILS.get(a, a) for a in load_vqa_config().types[kind].phrases(question)]
    if is_yes_no(question, asked):
        text = f"{'Yes' if pred.value in asked else 'No'}, {body}."
    else:
        text = f"{body[0].upper()}{body[1:]}."
    return Answer(answer=text, source=None, confidence=round(pred.confidence * confidence, 4), answerable=True,
                  question_type=kind)


def answer_question(product_or_image: Product | str | Image.Image, question: str,
                    extractor: AttributeExtractor | None = None) -> Answer:
    """Answer ``question`` about a catalog product (a ``Product`` or its id) or an uploaded photo (read by
    ``extractor``, the runtime's when the agent asks)."""
    if isinstance(product_or_image, Image.Image):
        return answer_from_photo(product_or_image, question, extractor=extractor)
    if isinstance(product_or_image, Product):
        return answer_from_listing(product_or_image, question)
    from atelier.tools.store import open_store

    product = open_store().get_product(product_or_image)
    if product is not None:
        return answer_from_listing(product, question)
    if Path(product_or_image).is_file():
        from atelier.tools.images import load_image

        return answer_from_photo(load_image(product_or_image), question, extractor=extractor)
    raise InputError(f"unknown product id or image file: {product_or_image!r}",
                     public_message="That is neither a product in the catalog nor a readable photo.")
