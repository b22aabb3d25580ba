"""Image/text training pairs from both catalogs, and the feature cache that makes retraining cheap.

Extraction is the expensive step (~56k photos through the frozen trunk at ~70-100 img/s), so it runs once and
is cached under ``<cache_dir>/encoder/``: per catalog, the trunk activations (float16, 192x7x7), the frozen
pooled features, the colour histograms and the raw MiniLM text vectors. It resumes where it stopped.
The test split (``datasets/splits``) is extracted too (for evaluation) but flagged, and training skips it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from atelier.tools.errors import InputError
from atelier.tools.encoders.vision import (FEATURE_DIM, HIST_DIM, TRUNK_SHAPE, OnnxRunner, Tower, hsv_histogram, pixels,
    split_backbone)

TEXT_DIM = 384

CATALOGS = ("hm", "fpi")


@dataclass
class Pairs:
    """One catalog's items: ids, absolute image paths, training texts, and the test-split flag."""

    catalog: str
    ids: list[str]
    images: list[Path]
    texts: list[str]
    test: np.ndarray


def hm_text(row: pd.Series) -> str:
    desc = row["detail_desc"] if isinstance(row["detail_desc"], str) else ""
    text = (f"{row['prod_name']}. {row['product_type_name']}, {row['colour_group_name']}, "
            f"{row['graphical_appearance_name']}.")
    return f"{text} {desc}".strip()


def load_pairs(catalog: str, datasets: Path) -> Pairs:
    """H&M: name, type, colour, pattern and description; FPI: ``productDisplayName`` (see STACK.md)."""
    splits = datasets / "splits"
    if catalog == "hm":
        root = datasets / "hm"
        df = pd.read_csv(root / "articles.csv", dtype={"article_id": str, "product_code": str})
        test_codes = set((splits / "hm_test_product_codes.txt").read_text().split())
        return Pairs("hm", df["article_id"].tolist(), [root / p for p in df["image_path"]],
                     [hm_text(r) for _, r in df.iterrows()], df["product_code"].isin(test_codes).to_numpy())
    if catalog == "fpi":
        root = datasets / "fashion-product-images-small"
        df = pd.read_csv(root / "styles.csv", dtype={"id": str}, on_bad_lines="skip")
        test_ids = set((splits / "fpi_test_ids.txt").read_text().split())
        df = df[df["productDisplayName"].notna()]
        exists = [(root / p).exists() for p in df["image_path"]]
        df = df[exists]
        return Pairs("fpi", df["id"].tolist(), [root / p for p in df["image_path"]],
                     df["productDisplayName"].astype(str).tolist(), df["id"].isin(test_ids).to_numpy())
    raise InputError(f"unknown catalog {catalog!r}")


class TrunkAndPool(Tower):
    """Trunk activations (cached for tail fine-tuning) and the frozen tail's pooled features, in one pass."""

    def forward(self, x):
        t = self.trunk(x)
        return t, self.tail(t)


@dataclass
class Features:
    """Cached arrays for one catalog (memory-mapped where large)."""

    pairs: Pairs
    trunk: np.ndarray  # (n, 192, 7, 7) float16
    pooled: np.ndarray  # (n, 1280) float16, frozen ImageNet backbone
    hist: np.ndarray  # (n, 128) float32
    text: np.ndarray  # (n, 384) float32, raw MiniLM, normalised


def cache_root(cache_dir: Path, variant: str = "lite0") -> Path:
    return cache_dir / "encoder" / variant


def extract(catalog: str, datasets: Path, cache_dir: Path, variant: str = "lite0", skip_fpi_test: bool = True,
            log: Callable[[str], None] = print, batch: int = 64, limit: int | None = None,
            max_items: int | None = None, chunk: int = 1024) -> Features:
    """Fill (or resume) the feature cache of ``catalog`` and return its ready prefix.

    Items are processed in a fixed, seeded random order (FPI) in chunks of photos then texts, so a partial
    cache is a random sample of the catalog and usable at once; ``max_items`` stops extraction early (the
    returned features hold what is ready, at least ``max_items`` when that many exist).
    """
    pairs = load_pairs(catalog, datasets)
    if catalog == "fpi" and skip_fpi_test:
        pairs = _subset(pairs, np.flatnonzero(~pairs.test))
    if catalog == "fpi":
        pairs = _subset(pairs, np.random.default_rng(0).permutation(len(pairs.ids)))
    if limit is not None:
        pairs = _subset(pairs, np.arange(min(limit, len(pairs.ids))))
    n = len(pairs.ids)
    root = cache_root(cache_dir, variant) / catalog
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("ids_hash") != _ids_hash(pairs.ids):
        meta = {"ids_hash": _ids_hash(pairs.ids), "n": n, "images_done": 0, "texts_done": 0}
    if meta["texts_done"] is True:
        meta["texts_done"] = n
    fresh = meta["images_done"] == 0 and meta["texts_done"] == 0
    mode = "w+" if fresh else "r+"
    trunk = np.lib.format.open_memmap(root / "trunk.npy", mode=mode, dtype=np.float16, shape=(n, *TRUNK_SHAPE))
    pooled = np.lib.format.open_memmap(root / "pooled.npy", mode=mode, dtype=np.float16, shape=(n, FEATURE_DIM))
    hist = np.lib.format.open_memmap(root / "hist.npy", mode=mode, dtype=np.float32, shape=(n, HIST_DIM))
    text_path = root / "text.npy"
    if fresh or not text_path.exists():
        text = np.lib.format.open_memmap(text_path, mode="w+", dtype=np.float32, shape=(n, TEXT_DIM))
    else:
        text = np.load(text_path, mmap_mode="r+")
        if text.shape != (n, TEXT_DIM):
            raise InputError(f"corrupt feature cache {text_path}; delete {root} and retry")
    target = n if max_items is None else min(n, max_items)
    runner = text_model = None
    while min(meta["images_done"], meta["texts_done"]) < target:
        lo = min(meta["images_done"], meta["texts_done"])
        hi = min(n, lo + chunk)
        if meta["images_done"] < hi:
            if runner is None:
                trunk_m, tail_m = split_backbone(variant)
                runner = OnnxRunner(TrunkAndPool(trunk_m, tail_m), cache_dir / "onnx", f"trunkpool-{variant}",
                                    threads=2)
            t0 = time.time()
            for b in range(meta["images_done"], hi, batch):
                e = min(hi, b + batch)
                ims = [Image.open(p) for p in pairs.images[b:e]]
                x = np.stack([pixels(im) for im in ims])
                hist[b:e] = np.stack([hsv_histogram(im) for im in ims])
                t, p = runner(x)
                trunk[b:e], pooled[b:e] = t.astype(np.float16), p.astype(np.float16)
            for arr in (trunk, pooled, hist):
                arr.flush()
            log(f"[{catalog}] images {hi}/{n} {(hi - meta['images_done']) / (time.time() - t0):.0f} img/s")
            meta["images_done"] = hi
            meta_path.write_text(json.dumps(meta))
        if meta["texts_done"] < hi:
            if text_model is None:
                from atelier.tools.encoders.compact import load_text_model

                text_model = load_text_model()
            t0, start = time.time(), meta["texts_done"]
            text[start:hi] = text_model.encode(pairs.texts[start:hi], batch_size=64, convert_to_numpy=True,
                                               normalize_embeddings=True, show_progress_bar=False)
            text.flush()
            log(f"[{catalog}] texts {hi}/{n} {(hi - start) / (time.time() - t0):.0f} texts/s")
            meta["texts_done"] = hi
            meta_path.write_text(json.dumps(meta))
    ready = min(meta["images_done"], meta["texts_done"])
    keep = slice(0, ready)
    return Features(_subset(pairs, np.arange(ready)), np.load(root / "trunk.npy", mmap_mode="r")[keep],
                    np.load(root / "pooled.npy", mmap_mode="r")[keep], np.load(root / "hist.npy")[keep],
                    np.load(text_path)[keep])


def _subset(pairs: Pairs, idx: np.ndarray) -> Pairs:
    return Pairs(pairs.catalog, [pairs.ids[i] for i in idx], [pairs.images[i] for i in idx],
                 [pairs.texts[i] for i in idx], pairs.test[idx])


def _ids_hash(ids: list[str]) -> str:
    import hashlib

    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]


if __name__ == "__main__":
    import sys

    from atelier.tools.settings import apply_offline_defaults, get_settings

    apply_offline_defaults()

    s = get_settings()
    for cat in sys.argv[1:] or CATALOGS:
        extract(cat, s.datasets, s.cache_dir, log=lambda m: print(m, flush=True))
    print("done", flush=True)
