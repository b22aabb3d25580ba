"""Recognising catalog items in uploaded photos (``tools.recognition``) on test-split H&M photos, with the shipped
thresholds (calibrated on non-test items by ``atelier calibrate-recognition``).

Every sampled test article is looked up three ways, clean (the catalog file) and degraded (a screenshot / phone
photo: ``tools.training.recognition.degrade``): in the catalog (must be recognised as itself), with only itself
held out (its colour variants stay: must not be taken for one of them) and with its whole family held out (an
out-of-catalog garment: must not be "recognised" at all). Precision counts every accepted answer; a baseline
accepts the embedding's nearest neighbour above the similarity threshold that gives the same recall.

``python -m benchmarks.bench_recognition [--n 300] [--store PATH]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, store_index


def nearest_neighbour_baseline(queries, recall: float) -> tuple[float, float]:
    """Precision and false-accept rate of "the embedding's top hit, if similar enough" at about ``recall``."""
    top = [(q, max(q.matches, key=lambda m: m.similarity)) for q in queries if q.matches]
    right = sorted((m.similarity for q, m in top if q.in_catalog and m.id == q.id), reverse=True)
    if not right:
        return float("nan"), float("nan")
    threshold = right[min(len(right) - 1, max(0, int(recall * sum(q.in_catalog for q in queries)) - 1))]
    accepted = [(q, m) for q, m in top if m.similarity >= threshold]
    correct = sum(q.in_catalog and m.id == q.id for q, m in accepted)
    negatives = [q for q in queries if not q.in_catalog]
    false = sum(not q.in_catalog for q, _ in accepted)
    return correct / max(len(accepted), 1), false / max(len(negatives), 1)


def main(argv: list[str] | None = None) -> None:
    from atelier.tools.encoders import load_encoder
    from atelier.tools.images import load_image
    from atelier.tools.recognition import Recogniser, Thresholds
    from atelier.tools.settings import get_settings
    from atelier.tools.training.probes import test_split
    from atelier.tools.training.recognition import collect, degrade, same_photo_groups, score

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="Test articles sampled (default 300).")
    parser.add_argument("--store", type=Path, default=None, help="Store to read (default: the full H&M bench store).")
    args = parser.parse_args(argv or [])
    import torch

    torch.set_num_threads(1)
    index = store_index(args.store)
    test_codes, _ = test_split(get_settings().datasets)
    tested = [p for p in index.products if p.family in test_codes and p.image_path]
    rng = np.random.default_rng(0)
    sample = [tested[i] for i in sorted(rng.choice(len(tested), min(args.n, len(tested)), replace=False))]
    thresholds = Thresholds.load()
    recogniser = Recogniser(index, load_encoder(), thresholds)
    families = {p.id: p.family for p in index.products}
    twins = same_photo_groups(index.ids, index.matrix["image"])
    print(f"{len(sample)} test-split articles of {len(index.ids)}; accepted when: {thresholds.describe()}",
          flush=True)
    rows = []
    for kind in ("clean", "degraded"):
        started = time.perf_counter()
        photos = [load_image(p.image_path) for p in sample]
        if kind == "degraded":
            photos = [degrade(photo, rng) for photo in photos]
        queries = collect(recogniser, sample, photos, same_photo=twins)
        seconds = (time.perf_counter() - started) / max(len(queries), 1)
        s = score(queries, thresholds, families)
        nn_precision, nn_false = nearest_neighbour_baseline(queries, s.recall)
        rows.append([kind, s.positives, s.precision, s.recall, s.family_recall, s.false_accepts_by.get("item", 0.0),
                     s.false_accepts_by.get("family", 0.0), nn_precision, nn_false, f"{seconds * 1000:.0f}"])
    print_table("Catalog-photo recognition on test-split H&M photos (whole catalog)",
                ["photos", "n", "precision", "recall", "family recall", "false accepts: item held out",
                 "false accepts: family held out", "nearest-neighbour precision at that recall",
                 "nearest-neighbour false accepts", "ms per lookup"], rows)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
