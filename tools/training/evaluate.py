"""Cross-modal Recall@k on the H&M test split: each test article's own text (or photo) against the whole catalog.

This is the number every encoder change is judged by (STACK.md's baselines use the same protocol): a query
succeeds when its own item ranks in the top k among all 11,800 H&M items. Ties count against the query.
"""

from __future__ import annotations

import numpy as np

KS = (1, 10)


def ranks(queries: np.ndarray, gallery: np.ndarray, own: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """0-based rank of ``gallery[own[i]]`` for ``queries[i]`` under cosine similarity (vectors normalised)."""
    out = np.empty(len(queries), dtype=np.int64)
    for lo in range(0, len(queries), chunk):
        sims = queries[lo : lo + chunk] @ gallery.T
        target = sims[np.arange(len(sims)), own[lo : lo + chunk]]
        out[lo : lo + chunk] = (sims > target[:, None]).sum(axis=1)
    return out


def cross_modal_recall(text: np.ndarray, image: np.ndarray, test: np.ndarray, ks=KS) -> dict[str, float]:
    """``t2i_R@k`` and ``i2t_R@k``: rows of ``text``/``image`` are the same items; ``test`` flags the queries."""
    idx = np.flatnonzero(test)
    t2i = ranks(text[idx], image, idx)
    i2t = ranks(image[idx], text, idx)
    metrics = {}
    for k in ks:
        metrics[f"t2i_R@{k}"] = float((t2i < k).mean())
        metrics[f"i2t_R@{k}"] = float((i2t < k).mean())
    return metrics
