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
from dataclasses import dataclass, field
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
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # raw and taxonomy labels, object arrays


def hm_text(row: pd.Series) -> str:
    desc = row["detail_desc"] if isinstance(row["detail_desc"], str) else ""
    text = (f"{row['prod_name']}. {row['product_type_name']}, {row['colour_group_name']}, "
            f"{row['graphical_appearance_name']}.")
    return f"{text} {desc}".strip()


def fpi_label_text(row: pd.Series) -> str:
    """The label columns of an FPI product as a phrase (article type, colour, gender, usage), the way H&M texts
    include theirs. Training signal only: FPI queries stay the plain ``productDisplayName``."""
    facts = [row.get(k) for k in ("articleType", "baseColour", "gender", "usage")]
    return ", ".join(str(f) for f in facts if isinstance(f, str) and f.strip())


LABEL_COLUMNS = {
    "hm": {"type": "product_type_name", "colour": "colour_group_name", "gender": "index_group_name"},
    "fpi": {"type": "articleType", "colour": "baseColour", "gender": "gender"},
}


def _labels(catalog: str, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw catalog labels (``type``, ``colour``, ``gender``) and the shared taxonomy's ``category`` and
    ``tax_colour`` (so labels compare across catalogs), plus FPI's ``label_text`` phrase."""
    from atelier.tools.catalogs import FPI_GENDERS, hm_gender
    from atelier.tools.taxonomy import get_taxonomy

    tax = get_taxonomy()
    cols = LABEL_COLUMNS[catalog]
    out = {k: df[c].fillna("").astype(str).to_numpy(dtype=object) for k, c in cols.items()}
    out["category"] = np.array([tax.from_source("category", catalog, v) for v in out["type"]], dtype=object)
    out["tax_colour"] = np.array([tax.from_source("colour", catalog, v) for v in out["colour"]], dtype=object)
    if catalog == "hm":
        out["tax_gender"] = np.array([hm_gender(r) for r in df[["index_group_name", "section_name"]]
                                      .fillna("").to_dict("records")], dtype=object)
    else:
        out["tax_gender"] = np.array([FPI_GENDERS.get(v.lower(), "unknown") for v in out["gender"]], dtype=object)
        out["label_text"] = np.array([fpi_label_text(r) for _, r in df.iterrows()], dtype=object)
    return out


def load_pairs(catalog: str, datasets: Path, labels: bool = False) -> Pairs:
    """H&M: name, type, colour, pattern and description; FPI: ``productDisplayName`` (see STACK.md).

    ``labels``: also read the per-item labels (for evaluation agreement rates, auxiliary losses, captions)."""
    splits = datasets / "splits"
    if catalog == "hm":
        root = datasets / "hm"
        df = pd.read_csv(root / "articles.csv", dtype={"article_id": str, "product_code": str})
        test_codes = set((splits / "hm_test_product_codes.txt").read_text().split())
        return Pairs("hm", df["article_id"].tolist(), [root / p for p in df["image_path"]],
                     [hm_text(r) for _, r in df.iterrows()], df["product_code"].isin(test_codes).to_numpy(),
                     _labels("hm", df) if labels else {})
    if catalog == "fpi":
        root = datasets / "fashion-product-images-small"
        df = pd.read_csv(root / "styles.csv", dtype={"id": str}, on_bad_lines="skip")
        test_ids = set((splits / "fpi_test_ids.txt").read_text().split())
        df = df[df["productDisplayName"].notna()]
        exists = [(root / p).exists() for p in df["image_path"]]
        df = df[exists]
        return Pairs("fpi", df["id"].tolist(), [root / p for p in df["image_path"]],
                     df["productDisplayName"].astype(str).tolist(), df["id"].isin(test_ids).to_numpy(),
                     _labels("fpi", df) if labels else {})
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


VIEWS = ("lowres", "flip", "crop")


def augment(image: Image.Image, view: str, seed: int) -> Image.Image:
    """One training-time view of a photo (deterministic per item), cached like the original:

    - ``lowres``: downscaled to FPI's 80-px height and back up by the usual pipeline — H&M photos seen at the
      resolution FPI photos have (the two catalogs differ 5x in resolution);
    - ``flip``: mirrored left-right (no label changes);
    - ``crop``: a random crop keeping 80-100% of each side (the garment stays; colour is untouched, so colour
      labels stay valid).
    """
    image = image.convert("RGB")
    if view == "lowres":
        w, h = image.size
        scale = 80 / max(h, 1)
        return image.resize((max(1, round(w * scale)), 80), Image.BILINEAR) if scale < 1 else image
    if view == "flip":
        return image.transpose(Image.FLIP_LEFT_RIGHT)
    if view == "crop":
        rng = np.random.default_rng(seed)
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((x0, y0, x0 + cw, y0 + ch))
    raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")


def extract(catalog: str, datasets: Path, cache_dir: Path, variant: str = "lite0", skip_fpi_test: bool = False,
            log: Callable[[str], None] = print, batch: int = 64, limit: int | None = None,
            max_items: int | None = None, chunk: int = 1024, view: str | None = None, threads: int = 2) -> Features:
    """Fill (or resume) the feature cache of ``catalog`` and return its ready prefix.

    Items are processed in a fixed, seeded random order (FPI) in chunks of photos then texts, so a partial
    cache is a random sample of the catalog and usable at once; ``max_items`` stops extraction early (the
    returned features hold what is ready, at least ``max_items`` when that many exist). The test split is
    extracted too (flagged in ``pairs.test``): the benchmark's galleries are whole catalogs. ``view``: an
    augmented view of every photo (see ``augment``), cached under ``<catalog>@<view>``; its texts are the
    original's (copied, not re-encoded).
    """
    pairs = load_pairs(catalog, datasets, labels=True)
    if catalog == "fpi" and skip_fpi_test:
        pairs = _subset(pairs, np.flatnonzero(~pairs.test))
    if catalog == "fpi":
        pairs = _subset(pairs, np.random.default_rng(0).permutation(len(pairs.ids)))
    if limit is not None:
        pairs = _subset(pairs, np.arange(min(limit, len(pairs.ids))))
    n = len(pairs.ids)
    root = cache_root(cache_dir, variant) / (catalog if view is None else f"{catalog}@{view}")
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
                                    threads=threads)
            t0 = time.time()
            for b in range(meta["images_done"], hi, batch):
                e = min(hi, b + batch)
                ims = [Image.open(p) for p in pairs.images[b:e]]
                if view is not None:
                    ims = [augment(im, view, b + i) for i, im in enumerate(ims)]
                x = np.stack([pixels(im) for im in ims])
                hist[b:e] = np.stack([hsv_histogram(im) for im in ims])
                t, p = runner(x)
                trunk[b:e], pooled[b:e] = t.astype(np.float16), p.astype(np.float16)
            for arr in (trunk, pooled, hist):
                arr.flush()
            log(f"[{catalog}] images {hi}/{n} {(hi - meta['images_done']) / (time.time() - t0):.0f} img/s")
            meta["images_done"] = hi
            meta_path.write_text(json.dumps(meta))
        if meta["texts_done"] < hi and view is not None:
            base = extract(catalog, datasets, cache_dir, variant, skip_fpi_test, log, batch, limit, max_items=hi)
            text[meta["texts_done"]:hi] = base.text[meta["texts_done"]:hi]
            text.flush()
            meta["texts_done"] = hi
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


def label_text_vectors(f: Features, cache_dir: Path, variant: str = "lite0", log: Callable[[str], None] = print,
                       key: str = "label_text") -> np.ndarray | None:
    """MiniLM vectors of each item's label phrase (``pairs.labels[key]``; a few thousand distinct phrases, each
    encoded once and cached next to the features); None for a catalog without one (H&M texts already include
    their label columns). Training mixes them into the item's text: a label-derived caption."""
    if key not in f.pairs.labels:
        return None
    phrases = [str(c) for c in f.pairs.labels[key]]
    unique = sorted(set(phrases))
    root = cache_root(cache_dir, variant) / f.pairs.catalog
    path, tag = root / f"{key}.npy", root / f"{key}.hash"
    digest = _ids_hash(unique)
    if path.exists() and tag.exists() and tag.read_text() == digest:
        vectors = np.load(path)
    else:
        from atelier.tools.encoders.compact import load_text_model

        t0 = time.time()
        vectors = load_text_model().encode(unique, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                           show_progress_bar=False).astype(np.float32)
        log(f"[{f.pairs.catalog}] {len(unique)} distinct {key} phrases {len(unique) / (time.time() - t0):.0f}/s")
        root.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        tag.write_text(digest)
    index = {p: i for i, p in enumerate(unique)}
    return vectors[[index[p] for p in phrases]]


def _subset(pairs: Pairs, idx: np.ndarray) -> Pairs:
    return Pairs(pairs.catalog, [pairs.ids[i] for i in idx], [pairs.images[i] for i in idx],
                 [pairs.texts[i] for i in idx], pairs.test[idx], {k: v[idx] for k, v in pairs.labels.items()})


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
