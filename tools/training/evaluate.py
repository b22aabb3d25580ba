"""Cross-modal retrieval on the test splits of both catalogs: each test item's own text (or photo) against a whole
catalog's photos (or texts).

The protocol every encoder change is judged by (STACK.md's baselines use its H&M part): a query succeeds when its
own item ranks in the top k of the gallery. Ties do not count against the query (items with an identical text
have identical text vectors). Three galleries:

- ``hm``: the 1,795 H&M test articles' texts (name, type, colour, pattern, description) vs all 11,800 H&M photos;
- ``fpi``: the 4,400 FPI test products' ``productDisplayName`` vs all 44,072 FPI photos;
- ``mixed``: both query sets vs all 55,872 photos (texts) of the two catalogs together.

Besides R@1/R@10/MRR, "agreement" rates say whether the top-1 photo of a text query shares the query item's
article type / colour (raw catalog labels per catalog; the shared taxonomy's category / colour on ``mixed``).
The shipped encoder is chosen on the mean of the ``hm`` and ``fpi`` t2i R@10, never on one catalog alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KS = (1, 10)


def ranks(queries: np.ndarray, gallery: np.ndarray, own: np.ndarray, chunk: int = 1024,
          top1: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of ``gallery[own[i]]`` for ``queries[i]`` under cosine similarity (vectors normalised).

    When ``top1`` is given (an int array of len(queries)) it receives each query's best gallery index.
    """
    out = np.empty(len(queries), dtype=np.int64)
    for lo in range(0, len(queries), chunk):
        sims = queries[lo : lo + chunk] @ gallery.T
        target = sims[np.arange(len(sims)), own[lo : lo + chunk]]
        out[lo : lo + chunk] = (sims > target[:, None]).sum(axis=1)
        if top1 is not None:
            top1[lo : lo + chunk] = sims.argmax(axis=1)
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


@dataclass
class Gallery:
    """One evaluation gallery: aligned text/image vectors, query flags and per-item labels (name -> array)."""

    text: np.ndarray
    image: np.ndarray
    queries: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    query_text: np.ndarray | None = None  # text vectors of the queries when they differ from the gallery texts


def retrieval_metrics(g: Gallery, ks=KS) -> dict[str, float]:
    """t2i and i2t R@k and MRR of the query items against the whole gallery, plus top-1 label agreement."""
    idx = np.flatnonzero(g.queries)
    qtext = g.text[idx] if g.query_text is None else g.query_text
    top = np.empty(len(idx), dtype=np.int64)
    t2i = ranks(qtext, g.image, idx, top1=top)
    i2t = ranks(g.image[idx], g.text, idx)
    out: dict[str, float] = {}
    for name, r in (("t2i", t2i), ("i2t", i2t)):
        for k in ks:
            out[f"{name}_R@{k}"] = float((r < k).mean())
        out[f"{name}_MRR"] = float((1.0 / (r + 1)).mean())
    for label, values in g.labels.items():
        out[f"top1_{label}"] = float((values[top] == values[idx]).mean())
    return out


def mixed(galleries: list[Gallery], labels: list[dict[str, np.ndarray]]) -> Gallery:
    """Galleries concatenated into one; ``labels`` (one dict per gallery, same keys) replace theirs — shared
    taxonomy values, so that "same type" means the same thing across catalogs."""
    keys = labels[0].keys()
    return Gallery(np.concatenate([g.text for g in galleries]), np.concatenate([g.image for g in galleries]),
                   np.concatenate([g.queries for g in galleries]),
                   {k: np.concatenate([lab[k] for lab in labels]) for k in keys})


def mean_score(metrics: dict[str, dict[str, float]]) -> float:
    """The selection score: mean t2i R@10 of the H&M and FPI galleries."""
    return float(np.mean([metrics[c]["t2i_R@10"] for c in ("hm", "fpi") if c in metrics]))
