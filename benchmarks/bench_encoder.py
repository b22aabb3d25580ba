"""Compact encoder: cross-modal Recall@1/@10 on the H&M test split, against baselines run in the same process.

Each of the 1,795 test articles' own text is ranked against all 11,800 H&M photos (t2i), and its photo
against all 11,800 texts (i2t). Rows:

- untrained: the shipped architecture with a randomly initialised head (the floor; ratios are against it);
- ridge: closed-form ridge regression from frozen features to the text vector (cheap linear baseline);
- MLP on pooled + hist: head-only InfoNCE on frozen pooled features + histogram (STACK.md's recipe, retrained
  here from the cache, ~minutes; skipped by --quick);
- shipped: ``tools/encoders/weights/compact.pt`` as ``load_encoder("compact")`` uses it.

Features come from the cache ``atelier train-encoder`` fills (``--extract`` fills what is missing first).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from atelier.tools.encoders.heads import DEFAULT_WEIGHTS, CompactConfig, CompactWeights
from atelier.tools.settings import get_settings
from atelier.tools.training.encoder import Model, evaluate_model, train_compact
from atelier.tools.training.evaluate import cross_modal_recall
from atelier.tools.training.features import extract

STACK_MD = {"STACK.md frozen MLP (reference)": {"t2i_R@1": 0.035, "t2i_R@10": 0.214}}


def _untrained(hm, fpi, config: CompactConfig) -> dict[str, float]:
    """The shipped architecture (same inputs, standardisation) with a randomly initialised head."""
    from atelier.tools.training.encoder import _set_standardisation

    torch.manual_seed(0)
    config = config.model_copy(update={"tuned_tail": False, "text_adapter": False})
    model = Model(config, None).eval()
    _set_standardisation(model.head, {"hm": hm, **({"fpi": fpi} if fpi is not None else {})}, config)
    return evaluate_model(model, hm, tuned=False)


def _ridge(hm, fpi, alpha: float = 10.0) -> dict[str, float]:
    feats = [f for f in (hm, fpi) if f is not None]
    x = np.concatenate([np.hstack([np.asarray(f.pooled, np.float32), f.hist])[~f.pairs.test] for f in feats])
    y = np.concatenate([f.text[~f.pairs.test] for f in feats])
    mean, std = x.mean(0), x.std(0) + 1e-3
    xs = (x - mean) / std
    w = np.linalg.solve(xs.T @ xs + alpha * len(xs) / 1000 * np.eye(xs.shape[1]), xs.T @ y)
    img = ((np.hstack([np.asarray(hm.pooled, np.float32), hm.hist]) - mean) / std) @ w
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    return cross_modal_recall(hm.text, img.astype(np.float32), hm.pairs.test)


def _shipped(hm, weights: CompactWeights) -> dict[str, float]:
    model = Model(weights.config, weights.tail)
    model.head, model.adapter = weights.head, weights.adapter
    return evaluate_model(model.eval(), hm, tuned=weights.tail is not None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the frozen-MLP retraining row")
    parser.add_argument("--extract", action="store_true", help="extract missing features first (slow)")
    args, _ = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    from atelier.tools.encoders.compact import tail_factory

    settings = get_settings()
    shipped = CompactWeights.load(DEFAULT_WEIGHTS, tail_factory)
    print(f"shipped weights: {shipped.config.notes}")
    hm = extract("hm", settings.datasets, settings.cache_dir)
    fpi = extract("fpi", settings.datasets, settings.cache_dir, max_items=None if args.extract else 0)
    if not len(fpi.pairs.ids):
        print("(no cached FPI features: baselines use H&M only; --extract fills the cache)")
        fpi = None
    rows: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    for name, fn in [("untrained head", lambda: _untrained(hm, fpi, shipped.config)),
                     ("ridge (pooled + hist)", lambda: _ridge(hm, fpi))]:
        t0 = time.time()
        rows[name] = fn()
        timings[name] = time.time() - t0
    if not args.quick:
        t0 = time.time()
        rows["MLP on pooled + hist, InfoNCE"] = train_compact(
            None, catalogs=("hm", "fpi") if fpi is not None else ("hm",), extract_missing=False, epochs=15,
            log=lambda m: None)
        timings["MLP on pooled + hist, InfoNCE"] = time.time() - t0
    t0 = time.time()
    rows["shipped (compact.pt)"] = _shipped(hm, shipped)
    timings["shipped (compact.pt)"] = time.time() - t0
    base = rows["untrained head"]
    cols = ["t2i_R@1", "t2i_R@10", "i2t_R@1", "i2t_R@10"]
    n_test = int(hm.pairs.test.sum())
    print(f"\nH&M test split: {n_test} articles vs {len(hm.pairs.ids)} items\n")
    print(f"| variant | {' | '.join(cols)} | t2i_R@10 / untrained | seconds |")
    print("|---|" + "---|" * (len(cols) + 2))
    for name, m in rows.items():
        ratio = m["t2i_R@10"] / max(base["t2i_R@10"], 1e-9)
        print(f"| {name} | {' | '.join(f'{m[c]:.3f}' for c in cols)} | {ratio:.1f}x | {timings[name]:.0f} |")
    for name, m in STACK_MD.items():
        print(f"| {name} | {m['t2i_R@1']:.3f} | {m['t2i_R@10']:.3f} | - | - | - | - |")


if __name__ == "__main__":
    main()
