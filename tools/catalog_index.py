"""The store's in-process mirror for the hot path: filter columns and vectors of every product, by row.

Profiling ``search_products`` showed most of its time in Chroma's filtered queries (the ``where`` clause is
evaluated in SQLite before the vector search) and in reading full metadata back with every hit. This index
keeps what search needs in process, so Chroma answers only unfiltered nearest-neighbour queries (ids and
distances) and stays the system of record:

- columns: category, group, colour, pattern, gender, source as integer codes, and the price, so a filter is a
  vectorised boolean mask and a candidate's metadata is a few array reads;
- vectors: the text and image embeddings (float32, memory-mapped: numpy's float16 conversion alone cost more than
  the search), so a *selective* filter is answered by an exact dot product over the rows it allows (exact,
  hence recall 1.0, and a few milliseconds);
- products: every product's JSON in one memory-mapped blob, so the results need no read from Chroma.

It is persisted next to the store (``<store>/atelier-index/<prefix>/<revision>/``) and keyed by the store's
``revision`` (``ProductStore.revision``: moved by every write), never by a row count: a process opening an
unchanged store loads it in milliseconds; a changed store is re-read once and saved again.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atelier.tools.lexical import LexicalIndex
from atelier.tools.query_parser import SearchFilters, allowed_values
from atelier.tools.schema import Product
from atelier.tools.settings import Settings
from atelier.tools.store import FILTER_FIELDS, MAX_BATCH, WRITING, ProductStore

FORMAT = 3  # 3: prices in float64 (float32 printed 22.86 as 22.860000610351562), the catalog's words
KINDS = ("text", "image")


def index_root(settings: Settings) -> Path:
    """Where the index of the configured store lives: inside an embedded store's folder, else in the cache."""
    if settings.chroma_url:
        key = hashlib.sha1(settings.chroma_url.encode()).hexdigest()[:12]
        return settings.cache_dir / "atelier-index" / key / settings.collection_prefix
    return settings.store_path / "atelier-index" / settings.collection_prefix


@dataclass
class CatalogIndex:
    revision: str
    ids: list[str]
    codes: dict[str, np.ndarray]
    vocab: dict[str, list[str]]
    price: np.ndarray
    vectors: dict[str, np.ndarray]
    lexical: LexicalIndex
    blob: bytes | mmap.mmap
    offsets: np.ndarray
    words: frozenset[str] = frozenset()  # every stem of every product (the relevance gate's catalog vocabulary)

    def __post_init__(self) -> None:
        self.position = {pid: row for row, pid in enumerate(self.ids)}
        self.lookup = {f: {v: i for i, v in enumerate(values)} for f, values in self.vocab.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, product_id: str) -> int | None:
        return self.position.get(product_id)

    def metadata(self, row: int) -> dict[str, Any]:
        """The filterable metadata of one product (what ``SearchFilters.matches`` and ``_why`` read)."""
        meta: dict[str, Any] = {f: self.vocab[f][self.codes[f][row]] for f in FILTER_FIELDS}
        price = float(self.price[row])
        meta["has_price"] = not np.isnan(price)
        if meta["has_price"]:
            meta["price"] = price
        return meta

    def product(self, row: int) -> Product:
        return Product.model_validate_json(self.blob[int(self.offsets[row]) : int(self.offsets[row + 1])])

    def mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Rows passing ``filters`` (the same logic as ``SearchFilters.matches``), or None when nothing filters."""
        if filters.is_empty() and not filters.exclude_ids:
            return None
        keep = np.ones(len(self.ids), dtype=bool)
        for facet, values in filters.must.items():
            keep &= self._isin(facet, allowed_values(facet, values))
        for facet, values in filters.avoid.items():
            keep &= ~self._isin(facet, values)
        if filters.price_min is not None:
            keep &= self.price >= filters.price_min
        if filters.price_max is not None:
            keep &= self.price <= filters.price_max
        rows = [r for r in map(self.position.get, filters.exclude_ids) if r is not None]
        keep[rows] = False
        return keep

    def _isin(self, facet: str, values: Sequence[str]) -> np.ndarray:
        if facet not in self.codes:
            return np.zeros(len(self.ids), dtype=bool)
        wanted = [self.lookup[facet][v] for v in values if v in self.lookup[facet]]
        if not wanted:
            return np.zeros(len(self.ids), dtype=bool)
        return np.isin(self.codes[facet], np.asarray(wanted, dtype=self.codes[facet].dtype), kind="table")

    def exact(self, vector: np.ndarray, kind: str, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows among ``rows`` nearest to ``vector`` by cosine (exact), best first, with similarities.

        ``einsum`` rather than BLAS: a matrix-vector product is memory-bound, and multi-threaded BLAS on a busy
        machine waited for its second thread (5k rows: 55-70 ms against 13 ms, measured at load 18 on 2 cores)."""
        if not len(rows):
            return rows, np.zeros(0, np.float32)
        matrix, vector = self.vectors[kind], np.asarray(vector, np.float32)
        if len(rows) <= len(self.ids) // 4:
            matrix = np.take(matrix, rows, axis=0)
        sims = np.einsum("ij,j->i", matrix, vector)
        if len(sims) != len(rows):
            sims = sims[rows]
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        return rows[top], sims[top]

    def save(self, root: Path) -> None:
        """Write under ``root/<revision>`` and point ``root/current`` at it; older revisions are removed."""
        folder = root / self.revision
        tmp = root / f".{self.revision}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "revision": self.revision,
                                                   "vocab": self.vocab, "ids": self.ids}))
        np.savez(tmp / "columns.npz", price=self.price, offsets=self.offsets, **self.codes)
        (tmp / "products.bin").write_bytes(self.blob[:])
        for kind in KINDS:
            np.save(tmp / f"{kind}.npy", self.vectors[kind])
        self.lexical.save(tmp)
        (tmp / "words.json").write_text(json.dumps(sorted(self.words)))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        pointer = root / f".current.{os.getpid()}"
        pointer.write_text(self.revision)
        os.replace(pointer, root / "current")
        for old in root.iterdir():
            if old.is_dir() and old.name != self.revision and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, root: Path, revision: str) -> "CatalogIndex | None":
        """The saved index at ``revision``, or None when there is none (or it is unreadable)."""
        folder = root / revision
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT or meta.get("revision") != revision:
                return None
            with np.load(folder / "columns.npz") as columns:
                arrays = {name: columns[name] for name in columns.files}
            vectors = {kind: np.load(folder / f"{kind}.npy", mmap_mode="r") for kind in KINDS}
            lexical = LexicalIndex.load(folder)
            words = frozenset(json.loads((folder / "words.json").read_text()))
            with (folder / "products.bin").open("rb") as f:
                blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
        except (OSError, ValueError, KeyError):
            return None
        price, offsets = arrays.pop("price"), arrays.pop("offsets")
        return cls(revision, meta["ids"], arrays, meta["vocab"], price, vectors, lexical, blob, offsets, words)


def build_index(store: ProductStore, revision: str) -> "CatalogIndex":
    """Read every product's filter fields, search document and both vectors from the store (pages of
    ``MAX_BATCH``), fit the lexical index on the documents and collect the catalog's words (stems)."""
    from atelier.tools.coverage import product_stems

    ids: list[str] = []
    vocab: dict[str, dict[str, int]] = {f: {} for f in FILTER_FIELDS}
    codes: dict[str, list[int]] = {f: [] for f in FILTER_FIELDS}
    price: list[float] = []
    text_chunks: list[np.ndarray] = []
    documents: list[str] = []
    products: list[bytes] = []
    words: set[str] = set()
    for rows in _pages(store.text, ["metadatas", "embeddings", "documents"]):
        ids.extend(rows["ids"])
        for i, meta in enumerate(rows["metadatas"]):
            meta = meta or {}
            for f in FILTER_FIELDS:
                codes[f].append(vocab[f].setdefault(str(meta.get(f, "")), len(vocab[f])))
            price.append(float(meta["price"]) if meta.get("price") is not None else np.nan)
            documents.append(rows["documents"][i] or str(meta.get("title", "")))
            products.append(str(meta.get("product", "{}")).encode())
            if meta.get("product"):
                words |= product_stems(Product.model_validate_json(products[-1]))
        text_chunks.append(np.asarray(rows["embeddings"], dtype=np.float32))
    position = {pid: row for row, pid in enumerate(ids)}
    dim = store.dim
    image = np.zeros((len(ids), dim), dtype=np.float32)
    for rows in _pages(store.image, ["embeddings"]):
        at = [position.get(pid, -1) for pid in rows["ids"]]
        found = [j for j, row in enumerate(at) if row >= 0]
        image[[at[j] for j in found]] = np.asarray(rows["embeddings"], dtype=np.float32)[found]
    text = np.concatenate(text_chunks) if text_chunks else np.zeros((0, dim), np.float32)
    return CatalogIndex(revision, ids, {f: np.asarray(c, dtype=np.int32) for f, c in codes.items()},
                        {f: list(v) for f, v in vocab.items()}, np.asarray(price, dtype=np.float64),
                        {"text": text, "image": image}, LexicalIndex.build(documents), b"".join(products),
                        np.cumsum([0] + [len(p) for p in products], dtype=np.int64), frozenset(words))


def _pages(collection: Any, include: list[str]):
    offset = 0
    while True:
        rows = collection.get(include=include, limit=MAX_BATCH, offset=offset)
        if not rows["ids"]:
            return
        yield rows
        offset += len(rows["ids"])


def is_stable(revision: str) -> bool:
    """False while a write is under way (or was interrupted): such a state is served but never saved."""
    return not revision.startswith(WRITING)


class LiveIndex:
    """The current ``CatalogIndex`` of one store: loaded from disk or built once per revision, and re-checked
    against the store's revision at most every ``ttl`` seconds (one metadata read, never a count).

    While a write is under way the previous index keeps serving (hits it does not know are resolved from the
    store by the caller); the new revision is read once it is stable."""

    def __init__(self, store: ProductStore, root: Path | None, ttl: float = 2.0) -> None:
        self.store, self.root, self.ttl = store, root, ttl
        self._index: CatalogIndex | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> CatalogIndex:
        now = time.monotonic()
        if self._index is not None and now - self._checked < self.ttl:
            return self._index
        with self._lock:
            if self._index is None or time.monotonic() - self._checked >= self.ttl:
                revision = self.store.revision()
                if self._index is None or (revision != self._index.revision and is_stable(revision)):
                    self._index = self._open(revision)
                self._checked = time.monotonic()
            return self._index

    def _open(self, revision: str) -> CatalogIndex:
        if self.root is not None and is_stable(revision):
            loaded = CatalogIndex.load(self.root, revision)
            if loaded is not None:
                return loaded
        index = build_index(self.store, revision)
        if self.root is not None and is_stable(revision) and revision == self.store.revision():
            try:
                index.save(self.root)
            except OSError:  # a read-only store folder: serve from memory
                pass
        return index
