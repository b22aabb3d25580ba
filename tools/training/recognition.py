"""Calibrating catalog-photo recognition (``tools/recognition.py``) on non-test items, and measuring it.

What screenshots and phone photos do to a product photo is simulated (``degrade``: crop, downscale, slight
rotation, a frame, JPEG recompression). Each sampled product gives two queries: its degraded photo against the
whole catalog (must be recognised as itself) and the same photo with its whole variant family held out of the
catalog (an out-of-catalog garment: must not be "recognised" at all). The thresholds are the grid point with the
highest recall whose precision, over all three query sets together, reaches the target, and further evidence
tiers are added greedily while they raise recall at that precision (``choose``).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel

from atelier.tools.recognition import Match, Recogniser, Thresholds, Tier
from atelier.tools.schema import Product
from atelier.tools.settings import Settings, get_settings
from atelier.tools.variants import VariantProjection, fit_projection

FRAMES = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (240, 240, 235), (30, 30, 60))
GRID = {"inliers": (4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60, 80),
        "correlation": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9),
        "colour_difference": (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0)}


def degrade(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A screenshot / phone-photo version: up to 5% cropped per side, 40-100% scale, up to 4 degrees of rotation,
    a frame of 3-20 px half the time, JPEG quality 30-80."""
    image = image.convert("RGB")
    w, h = image.size
    left, top, right, bottom = (rng.uniform(0, 0.05, 4) * [w, h, w, h]).astype(int)
    image = image.crop((left, top, w - right, h - bottom))
    scale = rng.uniform(0.4, 1.0)
    image = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))), Image.BILINEAR)
    image = image.rotate(rng.uniform(-4, 4), resample=Image.BILINEAR, expand=True, fillcolor=(255, 255, 255))
    if rng.random() < 0.5:
        frame = FRAMES[int(rng.integers(len(FRAMES)))]
        image = ImageOps.expand(image, border=int(rng.integers(3, 21)), fill=frame)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(30, 81)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


class Query(BaseModel):
    """One recognition query: who it shows, whether that item is in the catalog (``held_out``: "no" when it is,
    "item" when only the item is not — its variants are — and "family" when none of its family is)."""

    id: str
    family: str | None
    held_out: str = "no"
    matches: list[Match]
    same_photo: list[str] = []  # other catalog items listed with this very photo: naming one of them is right

    def names_it(self, product_id: str) -> bool:
        return self.in_catalog and (product_id == self.id or product_id in self.same_photo)

    @property
    def in_catalog(self) -> bool:
        return self.held_out == "no"


class Scores(BaseModel):
    """Recognition quality at one set of thresholds."""

    precision: float
    recall: float
    family_recall: float
    false_accepts: float
    false_accepts_by: dict[str, float] = {}
    positives: int
    negatives: int


def collect(recogniser: Recogniser, products: Sequence[Product], images: Sequence[Image.Image],
            out_of_catalog: bool = True, log: Callable[[str], None] = lambda m: None,
            same_photo: dict[str, list[str]] | None = None) -> list[Query]:
    """Verified candidates for each photo: as itself in the catalog, with only itself held out (its colour
    variants stay), and with its whole family held out. ``same_photo`` (``same_photo_groups``) names catalog
    items listed with the very same photo: they are held out with the item (recognising the photo as theirs
    would be right, not a false "that's our item")."""
    same_photo = same_photo or {}
    queries = []
    for n, (product, image) in enumerate(zip(products, images), start=1):
        vector = recogniser.embed(image)
        twins = same_photo.get(product.id, [])
        queries.append(Query(id=product.id, family=product.family, same_photo=twins,
                             matches=recogniser.candidates(image, vector)))
        if out_of_catalog:
            queries.append(Query(id=product.id, family=product.family, held_out="item",
                                 matches=recogniser.candidates(image, vector, exclude_ids=(product.id, *twins))))
        if out_of_catalog and product.family:
            queries.append(Query(id=product.id, family=product.family, held_out="family",
                                 matches=recogniser.candidates(image, vector, exclude_family=product.family,
                                                               exclude_ids=tuple(twins))))
        if n % 100 == 0:
            log(f"recognition: {n}/{len(products)} photos verified")
    return queries


def same_photo_groups(ids: Sequence[str], vectors: np.ndarray) -> dict[str, list[str]]:
    """For each catalog item whose photo is also another item's (identical image vectors: H&M lists some photos
    under several articles), the other items."""
    groups: dict[bytes, list[str]] = {}
    for pid, vector in zip(ids, np.asarray(vectors, np.float32)):
        groups.setdefault(np.round(vector, 4).tobytes(), []).append(pid)
    return {pid: [o for o in group if o != pid] for group in groups.values() if len(group) > 1 for pid in group}


def score(queries: Sequence[Query], thresholds: Thresholds, families: dict[str, str | None]) -> Scores:
    """Precision over every accepted answer (a wrong item, or any item for an out-of-catalog photo, is false);
    recall over in-catalog photos; ``families`` maps catalog ids to their variant family."""
    right = wrong = family_right = 0
    positives = sum(q.in_catalog for q in queries)
    false_accepts = 0
    wrong_by: dict[str, int] = {}
    for q in queries:
        accepted = next((m for m in q.matches if thresholds.accepts(m)), None)
        if accepted is None:
            continue
        if q.names_it(accepted.id):
            right += 1
        else:
            wrong += 1
            false_accepts += not q.in_catalog
            wrong_by[q.held_out] = wrong_by.get(q.held_out, 0) + 1
        family_right += q.in_catalog and q.family is not None and families.get(accepted.id) == q.family
    negatives = len(queries) - positives
    return Scores(precision=right / max(right + wrong, 1), recall=right / max(positives, 1),
                  family_recall=family_right / max(positives, 1), false_accepts=false_accepts / max(negatives, 1),
                  false_accepts_by={h: wrong_by.get(h, 0) / max(1, sum(q.held_out == h for q in queries))
                                    for h in ("item", "family")},
                  positives=positives, negatives=negatives)


def choose(queries: Sequence[Query], families: dict[str, str | None], target: float = 0.995,
           base: Thresholds | None = None, max_tiers: int = 2, min_gain: float = 0.01) -> tuple[Thresholds, Scores]:
    """Evidence tiers chosen greedily on ``queries``: first the grid tier with the best recall at precision >=
    ``target`` (else the most precise one), then, while precision stays at the target, the tier that adds the
    most recall — kept only if it adds at least ``min_gain`` (a tier for one or two photos is noise). Two tiers by
    default: on two independent 400-photo non-test samples a third (many inliers, looser colour) added 0.025
    recall in sample but let sibling variants of close colours through out of sample (precision 0.997 -> 0.992)."""
    base = base or Thresholds()
    evidence = _Evidence(queries)
    grid = [Tier(inliers=i, correlation=c, colour_difference=d) for i, c, d in itertools.product(*GRID.values())]
    chosen: list[Tier] = []
    accepted = np.zeros_like(evidence.valid)
    best_recall = -1.0
    for _ in range(max_tiers):
        best: tuple[tuple, Tier, np.ndarray] | None = None
        for tier in grid:
            mask = accepted | evidence.holds(tier)
            precision, recall = evidence.rates(mask)
            strictness = tier.inliers / 30 + tier.correlation - tier.colour_difference / 20  # among equals, the safest
            key = (precision >= target, recall if precision >= target else precision, precision, strictness)
            if best is None or key > best[0]:
                best = (key, tier, mask)
        assert best is not None
        (meets, recall, _, _), tier, mask = best
        if chosen and (not meets or recall < best_recall + min_gain):
            break
        chosen.append(tier)
        accepted, best_recall = mask, recall
        if not meets:
            break
    thresholds = base.model_copy(update={"tiers": chosen})
    return thresholds, score(queries, thresholds, families)


class _Evidence:
    """The candidates' verification evidence as (query, candidate) arrays, so a grid of tiers scores in numpy."""

    def __init__(self, queries: Sequence[Query]) -> None:
        k = max((len(q.matches) for q in queries), default=1)
        shape = (len(queries), k)
        self.inliers, self.correlation = np.zeros(shape), np.full(shape, -1.0)
        self.difference = np.full(shape, np.inf)
        self.valid, self.identical, self.right = (np.zeros(shape, bool) for _ in range(3))
        for i, q in enumerate(queries):
            for j, m in enumerate(q.matches):
                self.inliers[i, j], self.correlation[i, j], self.difference[i, j] = (m.inliers, m.correlation,
                                                                                    m.colour_difference)
                self.valid[i, j], self.identical[i, j] = True, m.identical
                self.right[i, j] = q.names_it(m.id)
        self.in_catalog = np.array([q.in_catalog for q in queries])

    def holds(self, tier: Tier) -> np.ndarray:
        return self.valid & (self.identical | ((self.inliers >= tier.inliers) & (self.correlation >= tier.correlation)
                                               & (self.difference <= tier.colour_difference)))

    def rates(self, accepted: np.ndarray) -> tuple[float, float]:
        """(precision, recall) when each query answers with its first accepted candidate."""
        answered = accepted.any(axis=1)
        right = answered & self.right[np.arange(len(accepted)), accepted.argmax(axis=1)]
        return (float(right.sum() / max(answered.sum(), 1)), float(right.sum() / max(self.in_catalog.sum(), 1)))


def non_test_products(products: Sequence[Product], datasets: Path) -> list[Product]:
    """The products that are not in the shared test split (H&M by product code, FPI by id)."""
    from atelier.tools.training.probes import test_split

    hm_test, fpi_test = test_split(datasets)
    return [p for p in products if not (p.source == "hm" and p.family in hm_test)
            and not (p.source == "fpi" and p.id in fpi_test)]


def calibrate(n: int = 300, target: float = 0.995, seed: int = 0, settings: Settings | None = None,
              log: Callable[[str], None] = print, max_tiers: int = 2) -> tuple[Thresholds, Scores, VariantProjection]:
    """Fit the variant projection and the recognition thresholds on the configured store's non-test items,
    and save both next to the code (``tools/variant_projection.npz``, ``tools/recognition.json``)."""
    from atelier.tools.candidates import StoreIndex
    from atelier.tools.encoders import encoder_fingerprint, load_encoder
    from atelier.tools.images import load_image
    from atelier.tools.store import open_store, product_from_metadata

    settings = settings or get_settings()
    encoder = load_encoder(settings.encoder)
    store = open_store(settings)
    catalog = [product_from_metadata(m) for _, m, _ in store.iter_metadata()]
    all_families = {p.id: p.family for p in catalog}
    stored: dict[str, np.ndarray] = {}
    for start in range(0, len(catalog), 2000):
        stored.update(store.vectors([p.id for p in catalog[start:start + 2000]], "image"))
    products = non_test_products(catalog, settings.datasets)
    log(f"{len(products)} non-test products in the store; fitting the variant projection")
    kept = [p.id for p in products if p.id in stored]
    projection = fit_projection(np.stack([stored[i] for i in kept]), [all_families[i] for i in kept],
                                fingerprint=encoder_fingerprint(encoder))
    projection.save()
    rng = np.random.default_rng(seed)
    pictured = [p for p in products if p.image_path and Path(p.image_path).is_file()]
    sample = [pictured[i] for i in sorted(rng.choice(len(pictured), min(n, len(pictured)), replace=False))]
    photos = [degrade(load_image(p.image_path), rng) for p in sample]
    recogniser = Recogniser(StoreIndex(store), encoder, Thresholds())
    twins = same_photo_groups(list(stored), np.stack(list(stored.values())))
    queries = collect(recogniser, sample, photos, log=log, same_photo=twins)
    thresholds, scores = choose(queries, all_families, target, max_tiers=max_tiers)
    thresholds.metrics = {"calibrated_on": f"{len(sample)} degraded non-test photos of {len(all_families)} products "
                                           f"({settings.store_path.name}): in the catalog, the item held out, its "
                                           "family held out (items listed with the same photo count as the item)",
                          "target_precision": target, **scores.model_dump(),
                          "encoder": encoder_fingerprint(encoder)}
    thresholds.save()
    return thresholds, scores, projection
