"""Attribute extraction from photos alone: macro-F1 per source field on the *test split* of H&M (colour_group,
graphical_appearance, product_type, product_group, index_group) and FPI (gender, articleType, baseColour,
season, usage) — majority class vs zero-shot (prompt ensembles in the shared space) vs a linear probe trained on
non-test items (vs the colour-histogram heads for colour fields) vs fusion (embedding + colour histogram), in one
run. Probes are class-balanced logistic regression on standardised features, C picked on a held-out slice of the
training items (``tools.probes.train.fit_probe``).

Then the shipped heads (``tools/probes/probes.json``) on the same test items, in the taxonomy's vocabulary:
macro-F1 and accuracy of each kind, and for the default kind the calibration (ECE) and the precision and
coverage of predictions above the "unknown" floor.

Reference (the seed paper, zero-shot macro-F1 on DeepFashion-MultiModal): Gemini 2.0 Flash 56.8%, GPT-4o-mini
43.3% — another dataset and far larger models, so a yardstick rather than a like-for-like comparison.

``python -m benchmarks.bench_attributes [--n 1000] [--fpi-train 8000]``; image embeddings are cached under
``.atelier/cache/attributes/<encoder>`` so reruns take seconds.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from benchmarks.common import print_table

HM_FIELDS = ("colour_group_name", "graphical_appearance_name", "product_type_name", "product_group_name",
             "index_group_name")
FPI_FIELDS = ("gender", "articleType", "baseColour", "season", "usage")
TEMPLATES = {
    "colour_group_name": ["a {} garment", "{} colour", "{}"], "baseColour": ["a {} garment", "{} colour", "{}"],
    "graphical_appearance_name": ["a {} garment", "{} pattern", "{}"],
    "product_type_name": ["a photo of a {}", "{}", "a {} on a white background"],
    "articleType": ["a photo of a {}", "{}", "a {} on a white background"],
    "product_group_name": ["{}", "a photo of {}"],
    "index_group_name": ["{}", "{} clothing", "{} fashion"], "gender": ["{}", "{} clothing", "for {}"],
    "season": ["clothing for {}", "a {} outfit", "{}"], "usage": ["{} wear", "a {} outfit", "{}"],
}
COLOUR_FIELDS = ("colour_group_name", "baseColour")
SEED_PAPER = {"Gemini 2.0 Flash": 0.568, "GPT-4o-mini": 0.433}


def macro_f1(truth: list[str], pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0))


def sample(items, n: int | None, seed: int = 0):
    if n is None or len(items.ids) <= n:
        return items
    mask = np.zeros(len(items.ids), bool)
    mask[np.random.default_rng(seed).choice(len(items.ids), n, replace=False)] = True
    return items.subset(mask)


def zero_shot_predict(encoder, field: str, classes: list[str], emb: np.ndarray) -> list[str]:
    from atelier.tools.attributes import AttributeSpec, zero_shot_head

    spec = AttributeSpec(field, classes, {c: [c.lower().replace("/", " or ")] for c in classes}, TEMPLATES[field])
    head = zero_shot_head(encoder, spec)
    return [classes[i] for i in head.logits(emb).argmax(axis=1)]


def field_rows(encoder, catalog: str, fields: tuple[str, ...], train, test, feats_train, feats_test) -> list[list]:
    from atelier.tools.training.probes import fit_probe

    rows = []
    for field in fields:
        y_train = train.frame[field].astype(str).replace("", "unknown").tolist()
        y_test = test.frame[field].astype(str).replace("", "unknown").tolist()
        keep = [i for i, v in enumerate(y_test) if v != "unknown"]
        truth = [y_test[i] for i in keep]
        majority = Counter(v for v in y_train if v != "unknown").most_common(1)[0][0]
        scores = {"majority": macro_f1(truth, [majority] * len(truth))}
        classes = sorted({v for v in y_train if v != "unknown"})
        started = time.perf_counter()
        zs = zero_shot_predict(encoder, field, classes, feats_test["embedding"][keep])
        scores["zero-shot"] = macro_f1(truth, zs)
        kinds = [("probe", ("embedding",))]
        if field in COLOUR_FIELDS:
            kinds += [("pixels", ("pixels",))]
        kinds += [("fusion", ("embedding", "pixels"))]
        keys = train.frame["product_key"].tolist()
        for kind, inputs in kinds:
            head = fit_probe(field, np.hstack([feats_train[i] for i in inputs]), y_train, kind, inputs, keys=keys)
            x = np.hstack([feats_test[i] for i in inputs])[keep]
            scores[kind] = macro_f1(truth, [head.classes[i] for i in head.logits(x).argmax(axis=1)])
        best = max((k for k in scores if k != "majority"), key=scores.get)
        rows.append([catalog, field, len(truth), len(set(truth)), scores["majority"], scores["zero-shot"],
                     scores["probe"], scores.get("pixels", "-"), scores.get("fusion", "-"), best,
                     f"{scores[best] / max(scores['zero-shot'], 1e-9):.2f}x",
                     f"{time.perf_counter() - started:.0f}s"])
    return rows


def shipped_rows(extractor, test_frames, feats) -> list[list]:
    """The shipped heads in the taxonomy's vocabulary, each kind, on the test items (H&M + FPI together)."""
    from sklearn.metrics import f1_score

    from atelier.tools.training.probes import expected_calibration_error

    rows = []
    for name in extractor.config.specs:
        truth = np.asarray(test_frames[name]) if name in test_frames else None
        if truth is None:
            continue
        known = truth != "unknown"
        if known.sum() < 20:
            continue
        default = extractor.heads.default.get(name, "zero-shot")
        for key, head in sorted(extractor.heads.heads.items()):
            if not key.startswith(name + "/"):
                continue
            x = head.features(feats)[known]
            proba = head.proba(x)
            pred = np.array(head.classes)[proba.argmax(axis=1)]
            conf = proba.max(axis=1)
            correct = pred == truth[known]
            kept = conf >= head.threshold
            rows.append([name, head.kind + (" *" if head.kind == default else ""), int(known.sum()),
                         float(f1_score(truth[known], pred, labels=sorted(set(truth[known])), average="macro",
                                        zero_division=0)),
                         float(correct.mean()), expected_calibration_error(conf, correct), head.threshold,
                         float(kept.mean()), float(correct[kept].mean()) if kept.any() else float("nan")])
    return rows


def main(argv: list[str] | None = None) -> None:
    from atelier.tools.attributes import AttributeExtractor, load_attribute_config
    from atelier.tools.encoders import load_encoder
    from atelier.tools.training.probes import catalog_items, image_features, text_labels

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="Test items per catalog (default: the whole split).")
    parser.add_argument("--fpi-train", type=int, default=12000,
                        help="FPI training items (non-test) for probes (0 = all).")
    args = parser.parse_args(argv or [])
    encoder = load_encoder()
    log = lambda m: print(m, flush=True)  # noqa: E731
    rows, test_frames, test_feats = [], [], []
    for catalog, fields, n_train in (("hm", HM_FIELDS, None), ("fpi", FPI_FIELDS, args.fpi_train)):
        train = sample(catalog_items(catalog, split="train"), n_train or None)
        test = sample(catalog_items(catalog, split="test"), args.n)
        emb_tr, pix_tr = image_features(train, encoder, log=log)
        emb_te, pix_te = image_features(test, encoder, log=log)
        rows += field_rows(encoder, catalog, fields, train, test, {"embedding": emb_tr, "pixels": pix_tr},
                           {"embedding": emb_te, "pixels": pix_te})
        frame = test.frame.copy()
        for name, spec in load_attribute_config().specs.items():
            if spec.from_text:
                frame[name] = (text_labels(frame["description"].tolist(), frame["group"].tolist(), spec.from_text,
                                           spec.applies_to) if catalog == "hm" else "unknown")
        test_frames.append(frame)
        test_feats.append((emb_te, pix_te))
    print(f"encoder {encoder.name}; test split only (H&M {len(test_frames[0])}, FPI {len(test_frames[1])} items)")
    means = [float(np.mean([r[c] for r in rows if isinstance(r[c], float)])) for c in (4, 5, 6, 8)]
    best_mean = float(np.mean([max(v for v in r[5:9] if isinstance(v, float)) for r in rows]))
    rows.append(["all", "mean of the fields", "", "", *means[:3], "-", means[3], "", f"{means[2] / means[1]:.2f}x",
                 ""])
    print_table("Macro-F1 from the photo alone, per source field (test split)",
                ["catalog", "field", "n", "classes", "majority", "zero-shot", "probe", "pixels", "fusion", "best",
                 "best/zero-shot", "time"], rows)
    print(f"mean macro-F1 of fusion (one head kind for every field): {means[3]:.3f}; of the best head per field "
          f"(picked on test, an upper bound): {best_mean:.3f} ({best_mean / means[1]:.2f}x zero-shot, "
          f"{best_mean / means[0]:.1f}x majority)")
    print("reference, zero-shot macro-F1 on DeepFashion-MultiModal (seed paper): "
          + ", ".join(f"{k} {v:.3f}" for k, v in SEED_PAPER.items()))
    import pandas as pd

    frames = pd.concat(test_frames)
    feats = {"embedding": np.vstack([e for e, _ in test_feats]), "pixels": np.vstack([p for _, p in test_feats])}
    extractor = AttributeExtractor(encoder)
    print(f"\nshipped heads: {'trained for this encoder' if extractor.trained else 'NOT trained for this encoder: zero-shot only'}"
          f" (* = default kind)")
    print_table("Shipped attribute heads in the taxonomy's vocabulary (test split, H&M + FPI)",
                ["attribute", "kind", "n", "macro-F1", "accuracy", "ECE", "floor", "coverage", "precision kept"],
                shipped_rows(extractor, {c: frames[c].to_numpy() for c in frames.columns}, feats))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
