"""Attribute extraction from a product photo alone: category, group, colour, pattern, gender, and where the photo
can show them sleeves, neckline, length and fit — each with a calibrated confidence, "unknown" below a floor.

Two ways to read an attribute off the shared image-text space, both kept (``tools.probes``):
zero-shot — the image embedding's cosine to prompt-ensemble class embeddings (``prompts/attributes.yaml``),
as in CLIP's zero-shot classification and the zero-shot attribute extraction of the seed paper (no labels
needed, so it works on any catalog); and a linear probe — logistic regression on the same embeddings, trained on
catalog labels of non-test items. Colour also has a pixel head (non-white HSV histogram). The shipped
``tools/probes/probes.json`` names the better kind per attribute, chosen on held-out non-test data.

``fill_missing_attributes`` uses it at ingestion to fill what a catalog lacks (FPI has no pattern), marking
every filled value in ``attributes["predicted"]`` and never overwriting a given one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from pydantic import BaseModel

from atelier.tools.encoders import Encoder, encoder_fingerprint, load_encoder
from atelier.tools.probes import DEFAULT_PROBES, Head, HeadSet
from atelier.tools.schema import UNKNOWN, Product
from atelier.tools.settings import PROMPTS_DIR
from atelier.tools.taxonomy import Taxonomy, get_taxonomy

log = logging.getLogger(__name__)

ATTRIBUTES = ("group", "category", "colour", "pattern", "gender", "sleeves", "neckline", "length", "fit")
PRODUCT_FIELDS = ("category", "group", "colour", "pattern", "gender")
DEFAULT_TEMPERATURE = 0.03


class AttributePrediction(BaseModel):
    """One attribute read off a photo; ``value`` is "unknown" when ``confidence`` is below the floor."""

    value: str
    confidence: float
    method: str = "zero-shot"


@dataclass(frozen=True)
class AttributeSpec:
    """What one attribute can take and how to prompt for it (from ``prompts/attributes.yaml``)."""

    name: str
    values: list[str]
    phrasings: dict[str, list[str]]
    templates: list[str]
    applies_to: tuple[str, ...] = ()
    from_text: dict[str, list[str]] = field(default_factory=dict)

    def prompts(self, value: str) -> list[str]:
        return [t.format(p) for t in self.templates for p in self.phrasings[value]]


@dataclass(frozen=True)
class AttributeConfig:
    specs: dict[str, AttributeSpec]
    target_precision: float
    default_threshold: float
    digest: str


def _default_phrasings(value: str, synonyms: list[str]) -> list[str]:
    words = [value.replace("-", " ")]
    for word in synonyms:
        if word not in (value, value + "s", words[0]) and not word.endswith("s"):
            words.append(word)
            break
    return words


def load_attribute_config(path: Path | None = None, taxonomy: Taxonomy | None = None) -> AttributeConfig:
    """Attribute specs: taxonomy values for the catalog facets, the YAML's own values for detail attributes."""
    path = path or PROMPTS_DIR / "attributes.yaml"
    text = path.read_text()
    data = yaml.safe_load(text)
    taxonomy = taxonomy or get_taxonomy()
    section = data["attributes"]
    specs: dict[str, AttributeSpec] = {}
    for name in ("category", "colour", "pattern", "gender"):
        conf = section.get(name) or {}
        given = conf.get("phrasings") or {}
        synonyms: dict[str, list[str]] = {}
        for word, value in taxonomy.synonyms[name].items():
            synonyms.setdefault(value, []).append(word)
        values = taxonomy.values(name)
        specs[name] = AttributeSpec(name, values, {v: given.get(v) or _default_phrasings(v, synonyms.get(v, []))
                                                   for v in values},
                                    conf.get("templates") or data["templates"])
    category = specs["category"]
    groups = [g for g in taxonomy.groups if any(taxonomy.group_of(c) == g for c in category.values)]
    specs["group"] = AttributeSpec("group", groups, {g: [p for c in category.values if taxonomy.group_of(c) == g
                                                         for p in category.phrasings[c][:1]] for g in groups},
                                   category.templates)
    for name, conf in section.items():
        if name in specs:
            continue
        phrasings = {str(k): list(v) for k, v in conf["phrasings"].items()}
        specs[name] = AttributeSpec(name, list(phrasings), phrasings, conf.get("templates") or data["templates"],
                                    tuple(conf.get("applies_to") or ()), dict(conf.get("from_text") or {}))
    return AttributeConfig({n: specs[n] for n in ATTRIBUTES if n in specs} | specs, float(data["target_precision"]),
                           float(data["default_threshold"]), hashlib.sha1(text.encode()).hexdigest()[:12])


def colour_features(image: Image.Image, size: int = 64) -> np.ndarray:
    """A non-white HSV histogram (12 hues x 2 saturations x 3 values + 4 greys) plus the foreground share.

    Catalog photos are shot on white, so near-white pixels are background; what is left is the garment's
    colour distribution, which global CNN pooling blurs.
    """
    small = image.convert("RGB")
    small.thumbnail((size, size))
    rgb = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0
    fg = rgb[~np.all(rgb > 0.9, axis=1)]
    out = np.zeros(12 * 2 * 3 + 4 + 1, np.float32)
    if len(fg) == 0:
        return out
    hsv = np.asarray(Image.fromarray((fg.reshape(1, -1, 3) * 255).astype(np.uint8)).convert("HSV"),
                     dtype=np.float32).reshape(-1, 3) / 255.0
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    chroma = s > 0.2
    hb = np.minimum((h * 12).astype(int), 11)
    sb = (s > 0.55).astype(int)
    vb = np.minimum((v * 3).astype(int), 2)
    np.add.at(out, (hb * 6 + sb * 3 + vb)[chroma], 1.0)
    np.add.at(out, 72 + np.minimum((v[~chroma] * 4).astype(int), 3), 1.0)
    out[:76] = np.sqrt(out[:76] / len(fg))
    out[76] = len(fg) / len(rgb)
    return out


def zero_shot_head(encoder: Encoder, spec: AttributeSpec, temperature: float = DEFAULT_TEMPERATURE,
                   threshold: float = 0.5) -> Head:
    """Class embeddings = the normalised mean of each value's prompt embeddings (prompt ensembling)."""
    prompts = [spec.prompts(v) for v in spec.values]
    flat = encoder.embed_texts([p for group in prompts for p in group])
    rows, start = [], 0
    for group in prompts:
        mean = flat[start:start + len(group)].mean(axis=0)
        rows.append(mean / max(np.linalg.norm(mean), 1e-12))
        start += len(group)
    weight = np.stack(rows).astype(np.float32)
    return Head(attribute=spec.name, kind="zero-shot", classes=list(spec.values), temperature=temperature,
                threshold=threshold, weight=weight, bias=np.zeros(len(rows), np.float32))


class AttributeExtractor:
    """Loads the encoder, the heads and the prompt embeddings once; predicts for batches of photos."""

    def __init__(self, encoder: Encoder | None = None, heads: HeadSet | None = None,
                 config: AttributeConfig | None = None, method: str = "auto",
                 probes_path: Path = DEFAULT_PROBES) -> None:
        self.encoder = encoder or load_encoder()
        self.config = config or load_attribute_config()
        self.taxonomy = get_taxonomy()
        self.method = method
        self._lock = threading.Lock()
        self.trained = heads is not None
        self.heads = heads if heads is not None else self._load_heads(probes_path)

    def _load_heads(self, path: Path) -> HeadSet:
        fingerprint = encoder_fingerprint(self.encoder)
        if path.is_file():
            shipped = HeadSet.load(path)
            if shipped.fingerprint == fingerprint:
                self.trained = True
                return shipped
            log.warning("attribute probes in %s were trained for another encoder (%s); using zero-shot heads",
                        path, shipped.encoder)
        heads = HeadSet(encoder=self.encoder.name, fingerprint=fingerprint)
        for spec in self.config.specs.values():
            heads.add(zero_shot_head(self.encoder, spec, threshold=self.config.default_threshold))
            heads.default[spec.name] = "zero-shot"
        return heads

    def head(self, attribute: str, method: str | None = None) -> Head:
        """The head for ``attribute``: the requested kind when it exists, else the set's default, else zero-shot."""
        method = method or self.method
        for kind in (method, self.heads.default.get(attribute), "zero-shot"):
            head = self.heads.get(attribute, kind) if kind and kind != "auto" else None
            if head is not None:
                return head
        with self._lock:
            head = zero_shot_head(self.encoder, self.config.specs[attribute], threshold=self.config.default_threshold)
            self.heads.add(head)
        return head

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encoder.embed_images(list(images))

    def needs_pixels(self, method: str | None = None) -> bool:
        return any("pixels" in self.head(a, method).inputs for a in self.config.specs)

    def predict_images(self, images: Sequence[Image.Image], method: str | None = None,
                       known: Sequence[dict[str, str]] | None = None) -> list[dict[str, AttributePrediction]]:
        images = list(images)
        if not images:
            return []
        pixels = np.stack([colour_features(im) for im in images]) if self.needs_pixels(method) else None
        return self.predict_features(self.embed(images), pixels, method, known)

    def predict_features(self, embeddings: np.ndarray, pixels: np.ndarray | None = None, method: str | None = None,
                         known: Sequence[dict[str, str]] | None = None) -> list[dict[str, AttributePrediction]]:
        """Predictions from precomputed image embeddings (and colour features, for pixel heads).

        ``known`` gives values already known per item (e.g. the catalog's group): a known group restricts the
        category to that group's categories and decides which detail attributes apply.
        """
        embeddings = np.atleast_2d(np.asarray(embeddings, np.float32))
        inputs = {"embedding": embeddings, "pixels": pixels}
        known = list(known) if known is not None else [{} for _ in range(len(embeddings))]
        probs: dict[str, tuple[Head, np.ndarray]] = {}
        for name in self.config.specs:
            head = self.head(name, method)
            x = head.features(inputs)
            if x is None:
                head = self.heads.get(name, "probe") or self.head(name, "zero-shot")
                x = head.features(inputs)
            probs[name] = (head, head.proba(x))
        return [self._decide(i, probs, known[i]) for i in range(len(embeddings))]

    def _decide(self, i: int, probs: dict[str, tuple[Head, np.ndarray]],
                known: dict[str, str]) -> dict[str, AttributePrediction]:
        out: dict[str, AttributePrediction] = {}
        for name, (head, p) in probs.items():
            if name in self.config.specs and self.config.specs[name].applies_to:
                continue
            row = p[i]
            if name == "category" and known.get("group", UNKNOWN) not in (UNKNOWN, "other"):
                mask = np.array([self.taxonomy.group_of(c) == known["group"] for c in head.classes])
                if mask.any():
                    row = np.where(mask, row, 0.0) / max(float(row[mask].sum()), 1e-12)
            out[name] = _prediction(head, row)
        given_group = known.get("group", UNKNOWN) not in (UNKNOWN, "other")
        if given_group and "group" in out:
            out["group"] = AttributePrediction(value=known["group"], confidence=1.0, method="given")
        self._reconcile(out)
        group = out["group"].value if "group" in out else known.get("group", UNKNOWN)
        for name, spec in self.config.specs.items():
            if spec.applies_to and group in spec.applies_to:
                head, p = probs[name]
                out[name] = _prediction(head, p[i])
        return out

    def _reconcile(self, out: dict[str, AttributePrediction]) -> None:
        """Category and group must agree: the more confident of the two decides the other."""
        category, group = out.get("category"), out.get("group")
        if category is None or group is None:
            return
        if category.value != UNKNOWN and self.taxonomy.group_of(category.value) != group.value:
            if category.confidence >= group.confidence or group.value == UNKNOWN:
                out["group"] = AttributePrediction(value=self.taxonomy.group_of(category.value),
                                                   confidence=category.confidence, method=category.method)
            else:
                out["category"] = AttributePrediction(value=UNKNOWN, confidence=category.confidence,
                                                      method=category.method)


def _prediction(head: Head, row: np.ndarray) -> AttributePrediction:
    best = int(np.argmax(row))
    confidence = float(row[best])
    value = head.classes[best] if confidence >= head.threshold else UNKNOWN
    return AttributePrediction(value=value, confidence=round(confidence, 4), method=head.kind)


def extract_attributes(image: Image.Image) -> dict[str, AttributePrediction]:
    """Attributes of one product photo (see ``AttributeExtractor``)."""
    return extract_attributes_batch([image])[0]


def extract_attributes_batch(images: Sequence[Image.Image], method: str = "auto") -> list[dict[str, AttributePrediction]]:
    """Attributes of many photos, in order, with one model load and batched embedding."""
    return AttributeExtractor(method=method).predict_images(images)


def _given(product: Product, name: str) -> str:
    if name in PRODUCT_FIELDS:
        value = getattr(product, name)
        return UNKNOWN if value in (UNKNOWN, "", None) or (name == "group" and value == "other") else value
    value = product.attributes.get(name)
    return value if isinstance(value, str) and value and value != UNKNOWN else UNKNOWN


def apply_predictions(product: Product, predictions: dict[str, AttributePrediction]) -> Product:
    """A copy of ``product`` with its unknown fields set from ``predictions``, each marked as predicted."""
    update: dict[str, object] = {}
    attributes = dict(product.attributes)
    predicted = dict(attributes.get("predicted") or {})
    for name, pred in predictions.items():
        if pred.value == UNKNOWN or _given(product, name) != UNKNOWN:
            continue
        if name in PRODUCT_FIELDS:
            update[name] = pred.value
        else:
            attributes[name] = pred.value
        predicted[name] = {"value": pred.value, "confidence": pred.confidence, "method": pred.method}
    if "category" in update and "group" not in update and _given(product, "group") == UNKNOWN:
        update["group"] = get_taxonomy().group_of(str(update["category"]))
    if not predicted:
        return product
    attributes["predicted"] = predicted
    return product.model_copy(update={**update, "attributes": attributes})


def fill_missing_attributes_batch(products: Sequence[Product], images: Sequence[Image.Image | None] | None = None,
                                  embeddings: np.ndarray | None = None,
                                  extractor: AttributeExtractor | None = None) -> list[Product]:
    """``fill_missing_attributes`` for a batch; pass the image ``embeddings`` ingestion already computed to skip
    the image model (pixel heads then fall back to the embedding probe unless images are given too)."""
    products = list(products)
    todo = [i for i, p in enumerate(products) if any(_given(p, n) == UNKNOWN for n in PRODUCT_FIELDS)]
    if not todo:
        return products
    extractor = extractor or AttributeExtractor()
    if embeddings is None:
        from atelier.tools.images import load_image

        if images is None:
            images = [load_image(p.image_path, max_bytes=50_000_000) if p.image_path else None for p in products]
        todo = [i for i in todo if images[i] is not None]
        if not todo:
            return products
        embeddings_todo = extractor.embed([images[i] for i in todo])
    else:
        embeddings_todo = np.asarray(embeddings)[todo]
    pixels = None
    if images is not None and extractor.needs_pixels() and all(images[i] is not None for i in todo):
        pixels = np.stack([colour_features(images[i]) for i in todo])
    known = [{"group": _given(products[i], "group")} for i in todo]
    preds = extractor.predict_features(embeddings_todo, pixels, known=known)
    out = list(products)
    for i, pred in zip(todo, preds):
        out[i] = apply_predictions(products[i], pred)
    return out


def fill_missing_attributes(product: Product, image: Image.Image | None = None, *,
                            embedding: np.ndarray | None = None,
                            extractor: AttributeExtractor | None = None) -> Product:
    """``product`` with the attributes its catalog lacks predicted from its photo (``image``, or its
    ``image_path``), recorded under ``attributes["predicted"]``; given values are never overwritten."""
    embeddings = None if embedding is None else np.atleast_2d(embedding)
    return fill_missing_attributes_batch([product], None if image is None else [image], embeddings, extractor)[0]


def describe_files(paths: Sequence[str | Path], method: str = "auto") -> list[dict[str, dict[str, object]]]:
    """``{"attributes": {name: {"value", "confidence"}}}`` per image file, in order (``atelier attributes``).

    Every file is opened before any model loads, so a bad file fails fast with ``ImageError``.
    """
    from atelier.tools.images import load_image

    images = [load_image(p) for p in paths]
    predictions = extract_attributes_batch(images, method)
    return [{"attributes": {name: {"value": p.value, "confidence": p.confidence} for name, p in pred.items()}}
            for pred in predictions]
