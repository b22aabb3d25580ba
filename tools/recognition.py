"""Is this uploaded photo one of our products? Near-duplicate recognition of catalog items in screenshots and
phone photos (resized, cropped, recompressed, framed by a border, slightly rotated).

Global embeddings cannot decide it: a degraded copy of a product photo is often less similar to its original than
the original is to a sibling variant or to another black T-shirt. The classic instance-retrieval recipe does
(Philbin et al. 2007, "Object retrieval with large vocabularies and fast spatial matching": shortlist by a global
descriptor, then spatial verification):

1. shortlist: the photo's image embedding (after stripping a coloured border) against the catalog's, top ``k``;
2. geometric verification: ORB keypoints (Rublee et al. 2011) matched with Lowe's ratio test, a RANSAC
   similarity transform, and the count of its inliers — a re-shot or re-drawn garment rarely agrees with the
   catalog photo on dozens of corners under one rotation + scale + shift;
3. photometric check: the catalog photo warped onto the upload by that transform must agree in brightness
   pattern (correlation of the L channel) and colour (mean Lab difference) on the garment's pixels — this is
   what tells the catalog photo from a sibling colour variant shot in the same pose.

A match is accepted only above thresholds calibrated on non-test catalog items
(``atelier calibrate-recognition`` -> ``tools/recognition.json``).
"""

from __future__ import annotations

import json
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from atelier.tools.candidates import CandidateIndex
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product
from atelier.tools.store import Hit

THRESHOLDS_PATH = Path(__file__).resolve().parent / "recognition.json"
SIDE = 320
COARSE_SIDE = 32
WHITE = 225


class Tier(BaseModel):
    """One kind of sufficient evidence: at least ``inliers`` RANSAC inliers, and the warped catalog photo agreeing
    with the upload to ``correlation`` (L channel) and within ``colour_difference`` (mean Lab)."""

    inliers: int
    correlation: float
    colour_difference: float

    def holds(self, match: "Match") -> bool:
        return (match.inliers >= self.inliers and match.correlation >= self.correlation
                and match.colour_difference <= self.colour_difference)

    def __str__(self) -> str:
        return (f">= {self.inliers} inliers, correlation >= {self.correlation}, colour difference <= "
                f"{self.colour_difference}")


class Thresholds(BaseModel):
    """When a verified candidate counts as the same photo: pixel-identical, or any tier of evidence holds.

    One tier cannot serve every photo: a plain garment shrunk into a small screenshot keeps only a handful of
    corners, yet the catalog photo warped by their transform matches it almost pixel for pixel; a busy print
    keeps hundreds of corners while JPEG shifts its colours a little. Tiers trade corners for photometric
    agreement, and ``choose_tiers`` adds one only while precision stays at the target. ``metrics`` records how
    they were calibrated."""

    shortlist: int = 20
    tiers: list[Tier] = Field(default_factory=lambda: [Tier(inliers=15, correlation=0.3, colour_difference=10.0)])
    metrics: dict[str, Any] = Field(default_factory=dict)

    def accepts(self, match: "Match") -> bool:
        return match.identical or any(tier.holds(match) for tier in self.tiers)

    def describe(self) -> str:
        return "; or ".join(str(t) for t in self.tiers)

    def save(self, path: Path = THRESHOLDS_PATH) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path = THRESHOLDS_PATH) -> "Thresholds":
        return cls.model_validate(json.loads(path.read_text())) if path.is_file() else cls()


class Match(BaseModel):
    """The best-verified catalog candidate for a photo, with its verification evidence."""

    id: str
    similarity: float
    inliers: int = 0
    correlation: float = 0.0
    colour_difference: float = 255.0
    identical: bool = False  # the same photo, only resized or recompressed (textureless items have few keypoints)


class Recognition(BaseModel):
    """``product`` is set only when the photo is recognised as that catalog item."""

    product: Product | None = None
    match: Match | None = None

    @property
    def recognised(self) -> bool:
        return self.product is not None


class Keypoints:
    """A photo scaled to ``SIDE`` pixels on its long side and, computed on first use, its ORB keypoints (a
    candidate that is the upload's very photo is recognised from its pixels alone)."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb

    @cached_property
    def _orb(self) -> tuple[np.ndarray, np.ndarray | None]:
        import cv2

        found, descriptors = _orb().detectAndCompute(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY), None)
        points = np.float32([k.pt for k in found]) if found else np.zeros((0, 2), np.float32)
        return points, descriptors

    @property
    def points(self) -> np.ndarray:
        return self._orb[0]

    @property
    def descriptors(self) -> np.ndarray | None:
        return self._orb[1]

    @cached_property
    def lab(self) -> np.ndarray:
        """The pixels in 8-bit CIE Lab (an upload is compared with every shortlisted candidate: converted once)."""
        import cv2

        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2LAB)


def channel_min(rgb: np.ndarray) -> np.ndarray:
    """The darkest channel of each pixel (what tells garment from white), ``rgb.min(axis=2)`` at a twentieth of
    its cost: numpy reduces a 3-wide last axis slowly, and this ran for every shortlisted candidate."""
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def strip_border(image: Image.Image, tolerance: int = 30) -> Image.Image:
    """Remove uniform non-white frames (screenshot padding, a coloured border) around a photo shot on white.

    Only a frame with white inside it is removed: a photo on a grey or coloured background stays as it is.
    """
    image = image.convert("RGB")
    stripped = image
    for _ in range(3):
        a = np.asarray(stripped, np.int16)
        corners = np.median(np.array([a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]), axis=0)
        if (corners > WHITE).all() or _studio_grey(corners):
            return stripped
        differs = np.abs(a - corners).max(axis=2) > tolerance
        rows = np.flatnonzero(differs.mean(axis=1) > 0.5)
        cols = np.flatnonzero(differs.mean(axis=0) > 0.5)
        if not len(rows) or not len(cols):
            break
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        if box == (0, 0, *stripped.size):
            break
        stripped = stripped.crop(box)
    return image


def _studio_grey(colour: np.ndarray) -> bool:
    """A light, neutral grey around a photo is a studio background, not a frame: taking it for one cropped catalog
    photos to their garment, and their own uploads then missed the shortlist (14 of 120 clean test photos)."""
    return bool(colour.min() > 180 and np.ptp(colour) < 20)


def keypoints(image: Image.Image) -> Keypoints:
    """The photo scaled to ``SIDE`` pixels on its long side, with its ORB keypoints (computed when first asked)."""
    import cv2

    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    scale = SIDE / max(h, w, 1)
    return Keypoints(cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                interpolation=cv2.INTER_AREA))


@lru_cache(maxsize=1)
def _orb() -> Any:
    import cv2

    return cv2.ORB_create(nfeatures=500, fastThreshold=10)


def catalog_keypoints(path: str) -> Keypoints | None:
    """Keypoints of a catalog photo (cached by path and modification time: similar uploads meet the same
    candidates)."""
    try:
        return _catalog_keypoints(path, Path(path).stat().st_mtime)
    except OSError:
        return None


@lru_cache(maxsize=2048)
def _catalog_keypoints(path: str, mtime: float) -> Keypoints | None:
    from atelier.tools.images import ImageError, load_image

    try:
        return keypoints(load_image(path))
    except ImageError:
        return None


def verify(query: Keypoints, candidate: Keypoints) -> tuple[int, float, float]:
    """(RANSAC inliers, L-channel correlation, mean Lab difference) of ``candidate`` seen as ``query``."""
    import cv2

    if query.descriptors is None or candidate.descriptors is None or min(len(query.points),
                                                                          len(candidate.points)) < 3:
        return 0, 0.0, 255.0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 4:
        return 0, 0.0, 255.0
    source = query.points[[m.queryIdx for m in good]]
    target = candidate.points[[m.trainIdx for m in good]]
    transform, mask = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=5.0)
    if transform is None or mask is None:
        return 0, 0.0, 255.0
    correlation, difference = photometric(query.rgb, candidate.rgb, transform, query.lab)
    return int(mask.sum()), correlation, difference


def identical(query: np.ndarray, candidate: np.ndarray, tolerance: float = 4.0) -> bool:
    """Whether two photos of the same shape are the same pixels up to resizing and recompression, compared on the
    garment (the non-white pixels of either): a plain black sock has too few corners to verify geometrically."""
    (h, w), (ch, cw) = query.shape[:2], candidate.shape[:2]
    if abs(h / max(w, 1) - ch / max(cw, 1)) > 0.02 * ch / max(cw, 1):
        return False
    if _coarse_difference(query, candidate) > tolerance:
        return False
    return garment_difference(query, candidate) <= tolerance


def garment_difference(query: np.ndarray, candidate: np.ndarray) -> float:
    """Mean absolute pixel difference on the garment (non-white in either), the candidate resized to the query;
    infinite when there is too little garment to compare."""
    import cv2

    h, w = query.shape[:2]
    resized = cv2.resize(candidate, (w, h), interpolation=cv2.INTER_AREA)
    garment = (channel_min(query) < WHITE) | (channel_min(resized) < WHITE)
    if garment.sum() < 0.02 * h * w:
        return float("inf")
    return float(np.abs(query.astype(np.float32) - resized.astype(np.float32))[garment].mean())


def _coarse_difference(query: np.ndarray, candidate: np.ndarray, side: int = COARSE_SIDE) -> float:
    """Mean absolute difference of both photos shrunk to ``side`` pixels, over every pixel. Block means differ by
    no more than their pixels do, and the background only dilutes the mean, so this is (up to resampling) a lower
    bound of the garment difference ``identical`` computes: above the tolerance, the full-size comparison —
    most of a photo turn's time, run for every shortlisted candidate — can be skipped."""
    import cv2

    h, w = query.shape[:2]
    size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
    small = [cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32) for a in (query, candidate)]
    return float(np.abs(small[0] - small[1]).mean())


def photometric(query: np.ndarray, candidate: np.ndarray, transform: np.ndarray,
                query_lab: np.ndarray | None = None) -> tuple[float, float]:
    """Agreement of the catalog photo warped onto the upload, on the catalog garment's (non-white) pixels
    (``query_lab``: the query's 8-bit Lab pixels when already known)."""
    import cv2

    h, w = query.shape[:2]
    warped = cv2.warpAffine(candidate, transform, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                            borderValue=(255, 255, 255))
    garment = channel_min(warped) < WHITE
    if garment.sum() < 50:
        return 0.0, 255.0
    lab = cv2.cvtColor(query, cv2.COLOR_RGB2LAB) if query_lab is None else query_lab
    q = lab[garment].astype(np.float32)
    c = cv2.cvtColor(warped, cv2.COLOR_RGB2LAB)[garment].astype(np.float32)
    correlation = float(np.corrcoef(q[:, 0], c[:, 0])[0, 1]) if q[:, 0].std() > 1 and c[:, 0].std() > 1 else 0.0
    return correlation, float(np.abs(q - c).mean())


class Recogniser:
    """Recognises catalog items in photos against one candidate index."""

    def __init__(self, index: CandidateIndex, encoder: Any, thresholds: Thresholds | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.thresholds = thresholds or Thresholds.load()

    def embed(self, image: Image.Image) -> np.ndarray:
        """The shortlist vector: the photo's embedding with any coloured frame removed first."""
        return self.encoder.embed_images([strip_border(image)])[0]

    def candidates(self, image: Image.Image, vector: np.ndarray | None = None, exclude_family: str | None = None,
                   exclude_ids: tuple[str, ...] = (), identical_only: bool = False) -> list[Match]:
        """Every shortlisted candidate with its verification evidence, best-verified first: pixel-identical, then
        the closest colours (a sibling variant shot in the same pose has as many inliers as the item itself; its
        colours are what differ). ``exclude_*`` hold items out of the catalog, for calibration and benchmarks.

        ``identical_only``: when some candidates are the upload's very photo, only those, verified — they sort
        first whatever the others' evidence, so a screenshot of a catalog photo costs a pixel check per candidate
        instead of a geometric verification."""
        vector = self.embed(image) if vector is None else vector
        k = self.thresholds.shortlist
        hits = self.index.query(vector, "image", SearchFilters(exclude_ids=list(exclude_ids)),
                                k * 2 if exclude_family else k)
        query = keypoints(image)
        shortlist: list[tuple[Hit, Keypoints | None, bool]] = []
        for hit in hits:
            product = self.index.product(hit)
            if exclude_family and product.family == exclude_family:
                continue
            found = catalog_keypoints(product.image_path) if product.image_path else None
            shortlist.append((hit, found, found is not None and identical(query.rgb, found.rgb)))
            if len(shortlist) == k:
                break
        if identical_only and any(same for _, _, same in shortlist):
            shortlist = [entry for entry in shortlist if entry[2]]
        matches = []
        for hit, found, same in shortlist:
            inliers, correlation, difference = verify(query, found) if found else (0, 0.0, 255.0)
            matches.append(Match(id=hit.id, similarity=hit.similarity, inliers=inliers, correlation=correlation,
                                 colour_difference=difference, identical=same))
        return sorted(matches, key=lambda m: (not m.identical, m.colour_difference, -m.inliers))

    def recognise(self, image: Image.Image, vector: np.ndarray | None = None,
                  exclude_family: str | None = None) -> Recognition:
        """The catalog item this photo shows, or no product (with the closest candidate as evidence)."""
        found = self.candidates(image, vector, exclude_family, identical_only=True)
        accepted = [m for m in found if self.thresholds.accepts(m)]
        if not accepted:
            return Recognition(match=found[0] if found else None)
        best = accepted[0]
        return Recognition(product=self.index.get_product(best.id), match=best)
