"""Build a synthetic N-product store from real ones, for measuring search at catalog sizes we do not have.

``python -m benchmarks.scale_store --size 250000 --out DIR --source STORE [--source STORE ...]``

Every synthetic product is a copy of a real one, taken in turn (so category, colour, gender, price... keep the
real catalogs' joint distribution), with a new id, its price jittered by up to ±20%, and both vectors moved by
Gaussian noise (``--noise`` per dimension, then re-normalised: cosine to the original ≈ 0.93 at 0.02), so the
copies of one product form a small cloud instead of duplicates. No photo is encoded: only Chroma writes. With
``--chroma-url`` the store is written to a Chroma server instead of a folder.

``--merge`` copies the sources verbatim instead (same ids, metadata, content hashes and vectors: no encoding),
e.g. the H&M and Fashion Product Images stores into one 56k store; an ingestion into the result then skips
every copied product as unchanged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from atelier.tools.settings import Settings, apply_offline_defaults
from atelier.tools.store import MAX_BATCH, ProductStore, filter_metadata

apply_offline_defaults()


def read_source(path: Path) -> dict:
    """Every product of a real store: ids, text-collection metadata, documents and both vectors."""
    store = ProductStore.open("compact", 384, Settings(store=path))
    out: dict = {"ids": [], "metas": [], "docs": [], "text": [], "image": {}}
    offset = 0
    while (rows := store.text.get(include=["metadatas", "documents", "embeddings"], limit=MAX_BATCH,
                                  offset=offset))["ids"]:
        out["ids"] += rows["ids"]
        out["metas"] += rows["metadatas"]
        out["docs"] += rows["documents"]
        out["text"].append(np.asarray(rows["embeddings"], np.float32))
        offset += len(rows["ids"])
    offset = 0
    while (rows := store.image.get(include=["embeddings"], limit=MAX_BATCH, offset=offset))["ids"]:
        out["image"].update(zip(rows["ids"], np.asarray(rows["embeddings"], np.float32)))
        offset += len(rows["ids"])
    out["text"] = np.concatenate(out["text"])
    out["image"] = np.stack([out["image"].get(pid, t) for pid, t in zip(out["ids"], out["text"])])
    return out


def noisy(vectors: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    moved = vectors + rng.normal(0.0, noise, vectors.shape).astype(np.float32)
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def synthetic_batch(src: dict, start: int, stop: int, noise: float, rng: np.random.Generator):
    """Products ``start..stop`` of the synthetic catalog: (ids, text metadatas, documents, text, image vectors)."""
    n = len(src["ids"])
    picks = np.arange(start, stop) % n
    ids, metas = [], []
    for i, j in zip(range(start, stop), picks):
        pid = f"syn{i:07d}"
        meta = dict(src["metas"][j])
        product = json.loads(meta["product"])
        product["id"] = pid
        if meta.get("price") is not None:
            price = round(float(meta["price"]) * float(rng.uniform(0.8, 1.2)), 4)
            meta["price"] = product["price"] = price
        meta["product"] = json.dumps(product)
        meta["content_hash"] = "synthetic"
        ids.append(pid)
        metas.append(meta)
    docs = [src["docs"][j] for j in picks]
    return ids, metas, docs, noisy(src["text"][picks], noise, rng), noisy(src["image"][picks], noise, rng)


def copy_batch(src: dict, start: int, stop: int):
    """Products ``start..stop`` of the sources, unchanged (``--merge``)."""
    return (src["ids"][start:stop], src["metas"][start:stop], src["docs"][start:stop], src["text"][start:stop],
            src["image"][start:stop])


def build(size: int | None, out: Path, sources: list[Path], noise: float = 0.02, chroma_url: str | None = None,
          seed: int = 0, merge: bool = False, log=print) -> dict:
    """Write the synthetic (or, with ``merge``, the merged) store; returns its build time and size."""
    started = time.perf_counter()
    parts = [read_source(p) for p in sources]
    src = {"ids": sum((p["ids"] for p in parts), []), "metas": sum((p["metas"] for p in parts), []),
           "docs": sum((p["docs"] for p in parts), []), "text": np.concatenate([p["text"] for p in parts]),
           "image": np.concatenate([p["image"] for p in parts])}
    order = np.random.default_rng(seed).permutation(len(src["ids"]))
    src = {k: ([v[i] for i in order] if isinstance(v, list) else v[order]) for k, v in src.items()}
    log(f"{len(src['ids'])} real products from {len(sources)} store(s) in {time.perf_counter() - started:.0f}s")
    size = len(src["ids"]) if merge else size
    settings = Settings(store=out, chroma_url=chroma_url)
    store = ProductStore.open("compact", 384, settings, create=True)
    rng = np.random.default_rng(seed)
    written = store.count()
    for start in range(written, size, MAX_BATCH):
        stop = min(size, start + MAX_BATCH)
        ids, metas, docs, text, image = (copy_batch(src, start, stop) if merge else
                                         synthetic_batch(src, start, stop, noise, rng))
        store.image.upsert(ids=ids, embeddings=image, metadatas=[filter_metadata(m) for m in metas])
        store.text.upsert(ids=ids, embeddings=text, metadatas=metas, documents=docs)
        log(f"{start + len(ids)}/{size} products, {time.perf_counter() - started:.0f}s")
    store.bump_revision()
    report = {"size": size, "seconds": round(time.perf_counter() - started, 1), "resumed_from": written,
              "sources": [str(p) for p in sources], "noise": noise}
    if chroma_url is None and not merge:
        (out / "synthetic.json").write_text(json.dumps(report))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="products to write (default: all, with --merge)")
    parser.add_argument("--merge", action="store_true", help="copy the sources verbatim instead of synthesising")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", type=Path, action="append", required=True)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--chroma-url", default=None)
    args = parser.parse_args()
    if args.size is None and not args.merge:
        parser.error("--size is needed unless --merge")
    print(json.dumps(build(args.size, args.out, args.source, args.noise, args.chroma_url, merge=args.merge)))


if __name__ == "__main__":
    main()
