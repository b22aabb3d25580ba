"""What stays the same when a garment comes in another colour or pattern: the variant-invariant part of an image
embedding.

The catalog's variant families show what colour and pattern changes do to an embedding: the members of a family
differ mostly in exactly that. The principal directions of the within-family differences are removed from every
vector (nuisance attribute projection, Solomonoff et al. 2005; the same idea as removing a concept by projecting
onto a classifier's nullspace, Ravfogel et al. 2020), so what is left compares shape, silhouette, length and cut.
Composed search uses it to keep the garment of a photo that is not a catalog item while its colour or pattern
changes. Fitted on non-test families only (``atelier calibrate-recognition``), tied to the encoder's weights.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from atelier.tools.vectors import unit_rows

PROJECTION_PATH = Path(__file__).resolve().parent / "variant_projection.npz"


class VariantProjection:
    """``x - V.T @ (V @ x)`` for the orthonormal nuisance directions ``V`` (k x dim)."""

    def __init__(self, directions: np.ndarray, fingerprint: str) -> None:
        self.directions = np.asarray(directions, np.float32)
        self.fingerprint = fingerprint

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Unit vectors with the colour/pattern variation removed (rows in, rows out)."""
        x = np.atleast_2d(np.asarray(vectors, np.float32))
        return unit_rows(x - (x @ self.directions.T) @ self.directions)

    def save(self, path: Path = PROJECTION_PATH) -> None:
        np.savez(path, directions=self.directions.astype(np.float16), fingerprint=np.array(self.fingerprint))


def fit_projection(vectors: np.ndarray, families: list[str | None], k: int = 16,
                   fingerprint: str = "") -> VariantProjection:
    """The top ``k`` principal directions of the vectors' deviations from their family's mean (families of 2+)."""
    groups: dict[str, list[int]] = {}
    for i, family in enumerate(families):
        if family:
            groups.setdefault(family, []).append(i)
    x = np.asarray(vectors, np.float32)
    deviations = [x[rows] - x[rows].mean(axis=0) for rows in groups.values() if len(rows) > 1]
    if not deviations:
        raise ValueError("no variant family with two or more members to learn from")
    _, _, vt = np.linalg.svd(np.concatenate(deviations), full_matrices=False)
    return VariantProjection(vt[:k], fingerprint)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> VariantProjection | None:
    data = np.load(path)
    return VariantProjection(data["directions"], str(data["fingerprint"]))


def load_projection(fingerprint: str, path: Path = PROJECTION_PATH) -> VariantProjection | None:
    """The shipped projection when it was fitted for the encoder with ``fingerprint``, else ``None``."""
    if not path.is_file():
        return None
    projection = _load(str(path), path.stat().st_mtime)
    return projection if projection is not None and projection.fingerprint == fingerprint else None
