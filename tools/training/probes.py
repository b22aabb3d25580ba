"""Training and calibrating the attribute heads on catalog labels of non-test items.

Labels come from the catalog adapters (taxonomy values for category, group, colour, pattern, gender) and, for
the detail attributes no catalog has a field for, from H&M descriptions ("long sleeves", "V-neck", "slim fit":
the ``from_text`` rules of ``prompts/attributes.yaml``; weak labels). The test split is never read for training:
``catalog_items(..., split="train")`` drops it, and a held-out slice of the *training* products (split by
product_code, so colour variants never straddle it) fits temperatures, confidence floors and the choice of
head per attribute.

Image features (encoder embeddings and colour histograms) are cached per encoder fingerprint under
``<cache_dir>/attributes`` so retraining and the benchmark rerun in seconds. ``atelier train-probes`` (or
``python -m atelier.tools.training.probes``) rebuilds ``tools/probes/probes.json``.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from atelier.tools.errors import InputError
from atelier.tools.probes import DEFAULT_PROBES, Head, HeadSet, choose_threshold, fit_temperature
from atelier.tools.settings import get_settings

FPI_DIR = "fashion-product-images-small"
TAXONOMY_LABELS = ("category", "group", "colour", "pattern", "gender")


@dataclass
class Items:
    """Catalog items with image paths, raw source fields, taxonomy labels and a product key for splitting."""

    catalog: str
    frame: pd.DataFrame  # index: item id; columns: raw fields + labels (taxonomy values, "unknown" when absent)
    paths: list[Path]

    @property
    def ids(self) -> list[str]:
        return list(self.frame.index)

    def subset(self, mask: np.ndarray) -> "Items":
        mask = np.asarray(mask, bool)
        return Items(self.catalog, self.frame[mask], [p for p, keep in zip(self.paths, mask) if keep])


def test_split(datasets: Path) -> tuple[set[str], set[str]]:
    splits = datasets / "splits"
    return (set((splits / "hm_test_product_codes.txt").read_text().split()),
            set((splits / "fpi_test_ids.txt").read_text().split()))


def catalog_items(catalog: str, datasets: Path | None = None, split: str = "train") -> Items:
    """H&M or FPI items of one split ("train": every non-test item, "test": the test split, "all")."""
    from atelier.tools.catalogs import Reject, read_catalog

    datasets = datasets or get_settings().datasets
    hm_test, fpi_test = test_split(datasets)
    if catalog == "hm":
        root = datasets / "hm"
        raw = pd.read_csv(root / "articles.csv", dtype=str, keep_default_na=False).set_index("article_id")
        raw["product_key"] = raw["product_code"]
        is_test = raw["product_code"].isin(hm_test)
    elif catalog == "fpi":
        root = datasets / FPI_DIR
        raw = pd.read_csv(root / "styles.csv", dtype=str, keep_default_na=False, on_bad_lines="skip").set_index("id")
        raw["product_key"] = raw.index
        is_test = raw.index.isin(fpi_test)
    else:
        raise InputError(f"unknown catalog {catalog!r}")
    keep = {"train": ~is_test, "test": is_test, "all": np.ones(len(raw), bool)}[split]
    raw = raw[np.asarray(keep)]
    products = {p.id: p for p in read_catalog(root, catalog, None) if not isinstance(p, Reject)}
    raw = raw[raw.index.isin(list(products))]
    for name in TAXONOMY_LABELS:
        raw[name] = [getattr(products[i], name) for i in raw.index]
    raw["description"] = [products[i].description for i in raw.index]
    return Items(catalog, raw, [Path(products[i].image_path) for i in raw.index])


def text_labels(descriptions: list[str], groups: list[str], rules: dict[str, list[str]],
                applies_to: tuple[str, ...]) -> list[str]:
    """Weak labels from descriptions: the one value whose phrases occur ("unknown" when none or several do)."""
    compiled = {v: re.compile("|".join(p), re.I) for v, p in rules.items()}
    out = []
    for text, group in zip(descriptions, groups):
        hits = [v for v, rx in compiled.items() if rx.search(text or "")] if group in applies_to else []
        out.append(hits[0] if len(hits) == 1 else "unknown")
    return out


def image_features(items: Items, encoder, batch: int = 64,
                   log: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, colour features) for ``items``, computed once per encoder and cached, resumably."""
    from atelier.tools.attributes import colour_features, encoder_fingerprint

    root = get_settings().cache_dir / "attributes" / encoder_fingerprint(encoder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{items.catalog}.npz"
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if path.exists():
        with np.load(path) as data:
            cache = {str(i): (e, p) for i, e, p in zip(data["ids"], data["emb"], data["pix"])}
    todo = [k for k, i in enumerate(items.ids) if i not in cache]
    if todo:
        reused = _from_encoder_cache(encoder, items, todo)
        if reused:
            log(f"[{items.catalog}] {len(reused)} embeddings projected from the encoder's cached backbone features")
            for k, (e, pix_row) in reused.items():
                cache[items.ids[k]] = (e.astype(np.float16), pix_row.astype(np.float16))
            todo = [k for k in todo if k not in reused]
            _save(path, cache)
    started = time.time()
    for n, lo in enumerate(range(0, len(todo), batch)):
        chunk = todo[lo:lo + batch]
        images = [Image.open(items.paths[k]).convert("RGB") for k in chunk]
        emb = encoder.embed_images(images)
        for k, e, im in zip(chunk, emb, images):
            cache[items.ids[k]] = (e.astype(np.float16), colour_features(im).astype(np.float16))
        done = lo + len(chunk)
        if (n + 1) % 20 == 0 or done == len(todo):
            _save(path, cache)
            log(f"[{items.catalog}] embedded {done}/{len(todo)} new images, "
                f"{done / max(time.time() - started, 1e-6):.0f} img/s")
    emb = np.stack([cache[i][0] for i in items.ids]).astype(np.float32) if items.ids else np.zeros((0, 0))
    pix = np.stack([cache[i][1] for i in items.ids]).astype(np.float32) if items.ids else np.zeros((0, 0))
    return emb, pix


def _from_encoder_cache(encoder, items: Items, todo: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Embeddings from the compact encoder's own feature cache (``tools.encoders.features``) when it covers the
    items: projecting cached backbone features takes milliseconds where embedding photos takes minutes.

    An optimisation only: it is used when projecting two cached items reproduces ``embed_images`` exactly
    (a tuned tail would not; the block-11 trunk descriptor is recomputed from the cached activations), and any
    failure falls back to embedding the photos.
    """
    from atelier.tools.attributes import colour_features

    project = getattr(encoder, "project", None)
    weights = getattr(encoder, "weights", None)
    if project is None or weights is None:
        return {}
    try:
        import json

        from atelier.tools.training.features import _ids_hash, cache_root, load_pairs

        root = cache_root(get_settings().cache_dir, weights.config.variant) / items.catalog
        meta = json.loads((root / "meta.json").read_text())
        pairs = load_pairs(items.catalog, get_settings().datasets)
        ids = pairs.ids
        if meta.get("images_done") != meta.get("n") or meta.get("ids_hash") != _ids_hash(ids):
            return {}
        position = {i: n for n, i in enumerate(ids)}
        found = [k for k in todo if items.ids[k] in position]
        if not found:
            return {}
        rows = np.array([position[items.ids[k]] for k in found])
        order = np.argsort(rows)
        pooled = np.load(root / "pooled.npy", mmap_mode="r")[rows[order]].astype(np.float32)
        hist = np.load(root / "hist.npy", mmap_mode="r")[rows[order]].astype(np.float32)
        if weights.config.trunk_pool:  # the block-11 descriptor, from the cached trunk activations
            import torch

            from atelier.tools.encoders.vision import trunk_pool

            trunk = np.load(root / "trunk.npy", mmap_mode="r")
            pooled = np.hstack([pooled, np.concatenate([
                trunk_pool(torch.from_numpy(np.asarray(trunk[rows[order[lo:lo + 2048]]], np.float32))).numpy()
                for lo in range(0, len(order), 2048)])])
        emb = project(pooled, hist)
        check = [found[i] for i in order[:2]]
        direct = encoder.embed_images([Image.open(items.paths[k]).convert("RGB") for k in check])
        if float(np.min(np.sum(direct * emb[:2], axis=1))) < 0.999:
            return {}
    except Exception:  # noqa: BLE001 - an optional shortcut must never break training
        return {}
    out = {}
    for j, idx in enumerate(order):
        k = found[idx]
        out[k] = (emb[j], colour_features(Image.open(items.paths[k]).convert("RGB")))
    return out


def _save(path: Path, cache: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Atomic replace, merged with what another process may have saved meanwhile (last writer keeps both)."""
    if path.exists():
        try:
            with np.load(path) as data:
                for i, e, p in zip(data["ids"], data["emb"], data["pix"]):
                    cache.setdefault(str(i), (e, p))
        except (OSError, ValueError, KeyError):
            pass
    ids = list(cache)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, ids=np.array(ids), emb=np.stack([cache[i][0] for i in ids]),
             pix=np.stack([cache[i][1] for i in ids]))
    tmp.replace(path)


def held_out(keys: list[str], fraction: float = 0.2, salt: str = "") -> np.ndarray:
    """A deterministic held-out mask by product key (a stable hash, so reruns split the same way; another
    ``salt`` gives an independent split, e.g. inside rows that one split already kept)."""
    return np.array([zlib.crc32((salt + k).encode()) % 1000 < fraction * 1000 for k in keys])


# (inverse L2 strength on standardised features, class weighting) pairs tried; picked on a held-out slice.
# Balanced weights suit many-class fields (article types, patterns: macro-F1 counts a rare class as much as a
# common one); unweighted suits few, overlapping classes (gender, index group). Larger C never won held-out.
PROBE_GRID: tuple[tuple[float, str | None], ...] = ((0.02, None), (0.05, None), (0.02, "balanced"),
                                                    (0.05, "balanced"))


def fit_probe(attribute: str, x: np.ndarray, y: list[str], kind: str = "probe",
              inputs: tuple[str, ...] = ("embedding",), c: float | None = None,
              class_weight: str | None = "balanced", keys: list[str] | None = None, min_count: int = 8,
              grid: tuple[tuple[float, str | None], ...] = PROBE_GRID) -> Head | None:
    """Multinomial logistic regression on standardised ``x``, folded back into one linear head.

    Classes with fewer than ``min_count`` examples are dropped. With ``c=None`` the inverse regularisation
    strength and the class weighting (``None`` or ``"balanced"``) are picked from ``grid`` by macro-F1 on a
    held-out slice of *these* rows (split by ``keys``, e.g. product codes, so colour variants never straddle
    it), then the probe is refitted on all rows with them; with ``c`` given, ``class_weight`` is used as is.
    The standardisation is folded into the weights, so the head stays ``x @ W.T + b``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    values, counts = np.unique(y[y != "unknown"], return_counts=True)
    classes = values[counts >= min_count]
    keep = np.isin(y, classes)
    if len(classes) < 2:
        return None
    mean = x[keep].mean(axis=0)
    scale = np.maximum(x[keep].std(axis=0), 1e-3)
    z = (x - mean) / scale

    def fit(rows: np.ndarray, strength: float, weighting: str | None):
        return LogisticRegression(C=strength, max_iter=300, tol=1e-3, class_weight=weighting).fit(z[rows], y[rows])

    if c is None:
        val = held_out(keys if keys is not None else [str(i) for i in range(len(y))], salt="probe-settings:")
        train_rows, val_rows = keep & ~val, keep & val
        if len(np.unique(y[train_rows])) == len(classes) and val_rows.sum() >= 20:
            scores = {}
            for setting in grid:
                pred = fit(train_rows, *setting).predict(z[val_rows])
                scores[setting] = f1_score(y[val_rows], pred, average="macro", labels=np.unique(y[val_rows]),
                                           zero_division=0)
            c, class_weight = max(scores, key=scores.get)
        else:
            c, class_weight = grid[-1]
    model = fit(keep, c, class_weight)
    weight = (model.coef_ / scale).astype(np.float32)
    bias = (model.intercept_ - weight @ mean).astype(np.float32)
    if len(model.classes_) == 2:
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2], np.float32)
    return Head(attribute=attribute, kind=kind, classes=[str(v) for v in model.classes_], inputs=inputs,
                weight=weight, bias=bias,
                metrics={"c": float(c), "balanced": float(class_weight == "balanced")})


def calibrate(head: Head, x: np.ndarray, y: list[str], target: float) -> Head:
    """Fit the temperature and the confidence floor on held-out labels; record held-out metrics."""
    from sklearn.metrics import f1_score

    y = np.asarray(y)
    keep = np.isin(y, head.classes)
    if keep.sum() < 10:
        return head
    index = {c: i for i, c in enumerate(head.classes)}
    labels = np.array([index[v] for v in y[keep]])
    logits = head.logits(x[keep])
    head.temperature = fit_temperature(logits, labels)
    proba = head.proba(x[keep])
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    correct = pred == labels
    head.threshold = choose_threshold(conf, correct, target)
    kept = conf >= head.threshold
    head.metrics = {
        **{k: v for k, v in head.metrics.items() if k in ("c", "balanced")},
        "val_n": int(keep.sum()),
        "val_accuracy": round(float(correct.mean()), 4),
        "val_macro_f1": round(float(f1_score(labels, pred, average="macro", labels=np.unique(labels))), 4),
        "val_coverage": round(float(kept.mean()), 4),
        "val_precision_kept": round(float(correct[kept].mean()) if kept.any() else 0.0, 4),
        "val_ece": round(expected_calibration_error(conf, correct), 4),
    }
    return head


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (confidence > lo) & (confidence <= hi)
        if m.any():
            total += m.mean() * abs(confidence[m].mean() - correct[m].mean())
    return float(total)


def training_set(datasets: Path, encoder, fpi_limit: int = 0, seed: int = 0,
                 log: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Labels and features of every non-test H&M item plus a random sample of non-test FPI items."""
    from atelier.tools.attributes import load_attribute_config

    config = load_attribute_config()
    hm = catalog_items("hm", datasets, "train")
    fpi = catalog_items("fpi", datasets, "train")
    if fpi_limit and len(fpi.ids) > fpi_limit:
        rng = np.random.default_rng(seed)
        mask = np.zeros(len(fpi.ids), bool)
        mask[rng.choice(len(fpi.ids), fpi_limit, replace=False)] = True
        fpi = fpi.subset(mask)
    frames, embs, pixs = [], [], []
    for items in (hm, fpi):
        emb, pix = image_features(items, encoder, log=log)
        frame = items.frame[list(TAXONOMY_LABELS) + ["description", "product_key"]].copy()
        frame["catalog"] = items.catalog
        for name, spec in config.specs.items():
            if spec.from_text:
                frame[name] = (text_labels(frame["description"].tolist(), frame["group"].tolist(), spec.from_text,
                                           spec.applies_to) if items.catalog == "hm" else "unknown")
        frames.append(frame)
        embs.append(emb)
        pixs.append(pix)
    return pd.concat(frames), {"embedding": np.vstack(embs), "pixels": np.vstack(pixs)}


def train_heads(encoder=None, datasets: Path | None = None, fpi_limit: int = 0,
                log: Callable[[str], None] = print) -> HeadSet:
    """Probe, fusion, zero-shot and (colour) pixel heads for every attribute, calibrated; the best kind on the
    held-out slice is the default. Probe settings are picked inside the training rows (``fit_probe``), so the
    held-out slice only calibrates and chooses the kind."""
    from atelier.tools.attributes import encoder_fingerprint, load_attribute_config, zero_shot_head
    from atelier.tools.encoders import load_encoder

    encoder = encoder or load_encoder()
    datasets = datasets or get_settings().datasets
    config = load_attribute_config()
    frame, features = training_set(datasets, encoder, fpi_limit, log=log)
    keys = frame["product_key"].to_numpy()
    val = held_out(list(keys))
    heads = HeadSet(encoder=encoder.name, fingerprint=encoder_fingerprint(encoder),
                    notes={"train_items": int((~val).sum()), "val_items": int(val.sum()),
                           "fpi_limit": fpi_limit, "target_precision": config.target_precision})
    for name, spec in config.specs.items():
        y = frame[name].to_numpy()
        candidates: list[Head] = [zero_shot_head(encoder, spec)]
        kinds = [("probe", ("embedding",)), ("fusion", ("embedding", "pixels"))]
        if name == "colour":
            kinds += [("pixels", ("pixels",))]
        for kind, inputs in kinds:
            x = np.hstack([features[i] for i in inputs])
            head = fit_probe(name, x[~val], list(y[~val]), kind, inputs, keys=list(keys[~val]))
            if head is not None:
                candidates.append(head)
        for head in candidates:
            x = np.hstack([features[i] for i in head.inputs])
            calibrate(head, x[val], list(y[val]), config.target_precision)
            heads.add(head)
            log(f"{name:9s} {head.kind:9s} {head.metrics}")
        best = max(candidates, key=lambda h: h.metrics.get("val_macro_f1", -1.0))
        heads.default[name] = best.kind
    return heads


def main(argv: list[str] | None = None) -> None:
    import argparse

    from atelier.tools.settings import apply_offline_defaults

    apply_offline_defaults()
    parser = argparse.ArgumentParser(description="Train the attribute probes (non-test items only).")
    parser.add_argument("--fpi-limit", type=int, default=0, help="FPI training items sampled (0 = all).")
    parser.add_argument("--out", type=Path, default=DEFAULT_PROBES)
    args = parser.parse_args(argv)
    heads = train_heads(fpi_limit=args.fpi_limit, log=lambda m: print(m, flush=True))
    heads.save(args.out)
    print(f"saved {len(heads.heads)} heads to {args.out}; defaults: {heads.default}")


if __name__ == "__main__":
    main()
