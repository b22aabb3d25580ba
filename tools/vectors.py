"""Vector helpers every layer shares: L2 normalisation of one vector or of the rows of a matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPSILON = 1e-12


def unit(vector: np.ndarray | Sequence[float]) -> np.ndarray:
    """``vector`` scaled to length 1 (float32); a zero vector stays zero instead of dividing by zero."""
    v = np.asarray(vector, dtype=np.float32)
    return (v / max(float(np.linalg.norm(v)), EPSILON)).astype(np.float32)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of ``matrix`` scaled to length 1 (float32): how every encoder returns its embeddings."""
    x = np.asarray(matrix, dtype=np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPSILON)).astype(np.float32)


def unit_mean(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The normalised mean direction of ``vectors``."""
    return unit(np.mean(np.stack(vectors), axis=0))
