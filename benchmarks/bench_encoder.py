"""Compact encoder: cross-modal retrieval on both catalogs' test splits, side by side, against baselines run in the
same process.

Galleries (see ``tools/encoders/evaluate.py``):

- ``hm``: each of the 1,795 H&M test articles' own text vs all 11,800 H&M photos (t2i), its photo vs all texts (i2t);
- ``fpi``: each of the 4,400 FPI test products' ``productDisplayName`` vs all 44,072 FPI photos (and back);
- ``mixed``: both query sets vs all 55,872 photos / texts of the two catalogs.

Per gallery: R@1, R@10 and MRR both ways, and the share of text queries whose top-1 photo has the query item's
article type / colour. The selection score is the mean of the ``hm`` and ``fpi`` t2i R@10.

Rows: ``untrained`` (the shipped architecture with a random head: the floor), ``ridge`` (closed-form ridge
regression from frozen features to the text vector, trained on both catalogs' non-test items), ``shipped``
(``tools/encoders/weights/compact.pt`` as ``load_encoder("compact")`` uses it) and any ``--weights`` files.
Features come from the cache ``atelier train-encoder`` fills (``--extract`` fills what is missing first).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from atelier.tools.encoders.heads import DEFAULT_WEIGHTS, CompactConfig, CompactWeights
from atelier.tools.settings import get_settings
from atelier.tools.training.encoder import Model, _set_standardisation, evaluate_model, frozen_features
from atelier.tools.training.evaluate import mean_score
from atelier.tools.training.features import extract

COLUMNS = ["t2i_R@1", "t2i_R@10", "t2i_MRR", "i2t_R@1", "i2t_R@10", "i2t_MRR", "top1_type", "top1_colour"]


def _untrained(feats, config: CompactConfig) -> dict[str, dict[str, float]]:
    """The shipped architecture (same inputs, standardisation) with a randomly initialised head, no adapter."""
    torch.manual_seed(0)
    config = config.model_copy(update={"tuned_tail": False, "tuned_blocks": 0, "text_adapter": False})
    model = Model(config, None).eval()
    _set_standardisation(model.head, feats, config)
    return evaluate_model(model, feats, tuned=False)


class _Ridge:
    """A stand-in for ``Model`` whose image side is a ridge regression onto the raw MiniLM text vectors."""

    trunk_pool = False

    def __init__(self, feats, alpha: float = 10.0) -> None:
        x = np.concatenate([self._x(f)[~f.pairs.test] for f in feats.values()])
        y = np.concatenate([np.asarray(f.text, np.float32)[~f.pairs.test] for f in feats.values()])
        self.mean, self.std = x.mean(0), x.std(0) + 1e-3
        xs = (x - self.mean) / self.std
        self.w = np.linalg.solve(xs.T @ xs + alpha * len(xs) / 1000 * np.eye(xs.shape[1]), xs.T @ y)

    @staticmethod
    def _x(f) -> np.ndarray:
        return np.hstack([frozen_features(f, False), np.asarray(f.hist, np.float32)])

    def images(self, f) -> np.ndarray:
        img = ((self._x(f) - self.mean) / self.std) @ self.w
        return (img / np.linalg.norm(img, axis=1, keepdims=True)).astype(np.float32)


def _ridge(feats) -> dict[str, dict[str, float]]:
    from atelier.tools.training.evaluate import Gallery, mixed, retrieval_metrics

    ridge = _Ridge(feats)
    galleries, shared = {}, []
    for name, f in feats.items():
        labels = {k: f.pairs.labels[k] for k in ("type", "colour")}
        galleries[name] = Gallery(np.asarray(f.text, np.float32), ridge.images(f), f.pairs.test, labels)
        shared.append({"type": f.pairs.labels["category"], "colour": f.pairs.labels["tax_colour"]})
    out = {name: retrieval_metrics(g) for name, g in galleries.items()}
    if len(galleries) > 1:
        out["mixed"] = retrieval_metrics(mixed(list(galleries.values()), shared))
    return out


def weights_metrics(weights: CompactWeights, feats, cache_dir: Path) -> dict[str, dict[str, float]]:
    """Metrics of a weights file, computed from the feature cache exactly as ``embed_images`` would embed."""
    model = Model(weights.config, weights.tail)
    model.head, model.adapter = weights.head, weights.adapter
    tuned = weights.tail is not None
    start = len(weights.tail.blocks) - weights.config.tuned_blocks if tuned and weights.config.tuned_blocks else 0
    return evaluate_model(model.eval(), feats, tuned=tuned, cache_dir=cache_dir, start=start)


def print_table(rows: dict[str, dict[str, dict[str, float]]], timings: dict[str, float]) -> None:
    galleries = [g for g in ("hm", "fpi", "mixed") if any(g in r for r in rows.values())]
    for g in galleries:
        print(f"\n{g}:\n")
        print(f"| variant | {' | '.join(COLUMNS)} |")
        print("|---|" + "---|" * len(COLUMNS))
        for name, r in rows.items():
            if g in r:
                cells = " | ".join(f"{r[g].get(c, float('nan')):.3f}" for c in COLUMNS)
                print(f"| {name} | {cells} |")
    print("\nselection score (mean of hm and fpi t2i R@10):\n")
    print("| variant | hm t2i R@10 | fpi t2i R@10 | mean | vs untrained | seconds |")
    print("|---|---|---|---|---|---|")
    base = mean_score(next(iter(rows.values())))
    for name, r in rows.items():
        score = mean_score(r)
        print(f"| {name} | {r['hm']['t2i_R@10']:.3f} | {r.get('fpi', {}).get('t2i_R@10', float('nan')):.3f} "
              f"| {score:.3f} | {score / max(base, 1e-9):.0f}x | {timings[name]:.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extract", action="store_true", help="extract missing features first (slow)")
    parser.add_argument("--weights", type=Path, action="append", default=[],
                        help="another weights file to measure beside the shipped one (repeatable)")
    parser.add_argument("--quick", action="store_true", help="skip the ridge baseline")
    args, _ = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    from atelier.tools.encoders.compact import tail_factory

    torch.set_num_threads(2)
    settings = get_settings()
    shipped = CompactWeights.load(DEFAULT_WEIGHTS, tail_factory)
    print(f"shipped weights: {shipped.config.notes}")
    cap = None if args.extract else 0
    feats = {c: extract(c, settings.datasets, settings.cache_dir, max_items=cap) for c in ("hm", "fpi")}
    for c, f in list(feats.items()):
        n, q = len(f.pairs.ids), int(f.pairs.test.sum())
        print(f"{c}: {q} test queries vs {n} items" + ("" if c == "hm" or n == 44072 else " (PARTIAL CACHE)"))
        if not n:
            del feats[c]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, float] = {}
    plan = [("untrained head", lambda: _untrained(feats, shipped.config))]
    if not args.quick:
        plan.append(("ridge (pooled + hist, both catalogs)", lambda: _ridge(feats)))
    for path in args.weights:
        plan.append((f"{path.name}", lambda p=path: weights_metrics(CompactWeights.load(p, tail_factory), feats,
                                                                      settings.cache_dir)))
    plan.append(("shipped (compact.pt)", lambda: weights_metrics(shipped, feats, settings.cache_dir)))
    for name, fn in plan:
        t0 = time.time()
        rows[name] = fn()
        timings[name] = time.time() - t0
    print_table(rows, timings)


if __name__ == "__main__":
    main()
