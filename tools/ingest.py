"""Catalog ingestion: read a catalog, embed product text and photos, write them to the store.

Batched with a progress bar. Idempotent and resumable: each product carries a content hash (product
fields + image file stamp + encoder), items already stored with the same hash are skipped, and
writes are upserts by id, so re-running after a crash (even ``kill -9``) finishes the job with nothing
lost or doubled. Bad rows and unreadable photos are counted and written to a rejects file with the
reason; they never abort the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from tqdm import tqdm

from atelier.tools.catalogs import CatalogOptions, Reject, read_catalog
from atelier.tools.encoders import Encoder, encoder_fingerprint, load_encoder
from atelier.tools.encoders.threads import one_thread, set_budget
from atelier.tools.images import ImageError, load_image
from atelier.tools.schema import Product
from atelier.tools.settings import Settings, get_settings
from atelier.tools.store import ProductStore


class IngestReport(BaseModel):
    """What an ingestion run did."""

    catalog: str
    format: str
    seen: int = 0
    added: int = 0
    skipped_unchanged: int = 0
    rejected: int = 0
    predicted: int = 0
    rejects_file: str | None = None
    seconds: float = 0.0
    items_per_second: float = 0.0
    store_count: int = 0
    reject_reasons: dict[str, int] = Field(default_factory=dict)


def content_hash(product: Product, encoder_id: str) -> str:
    """Changes when the product, its photo file or the encoder changes."""
    stamp = ""
    if product.image_path:
        stat = Path(product.image_path).stat()
        stamp = f"{stat.st_size}:{int(stat.st_mtime)}"
    payload = json.dumps([product.model_dump(mode="json"), stamp, encoder_id], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(rows, size)):
        yield batch


@dataclass
class _Batch:
    """One batch read, checked against the store and with its photos decoded, ready to encode."""

    size: int
    rejected: list[Reject]
    hashes: dict[str, str]
    products: list[Product]
    images: list
    unchanged: int


def _prepare(rows: list, store: ProductStore, fingerprint: str) -> _Batch:
    """The reading side of a batch, run on a thread one batch ahead of encoding (ONNX Runtime and Chroma release
    the GIL, so photo decoding and the store's hash check overlap with the models)."""
    products = [row for row in rows if not isinstance(row, Reject)]
    rejected = [row for row in rows if isinstance(row, Reject)]
    hashes = {p.id: content_hash(p, fingerprint) for p in products}
    stored = store.content_hashes([p.id for p in products])
    todo = [p for p in products if stored.get(p.id) != hashes[p.id]]
    batch = _Batch(len(rows), rejected, hashes, [], [], len(products) - len(todo))
    for product in todo:
        try:
            image = load_image(product.image_path, max_bytes=50_000_000) if product.image_path else None
        except ImageError as exc:
            batch.rejected.append(Reject(0, product.id, f"unreadable image: {exc}"))
            continue
        batch.products.append(product)
        batch.images.append(image)
    return batch


def ingest(path: str | Path, fmt: str, *, limit: int | None = None, batch_size: int = 64,
           options: CatalogOptions | None = None, settings: Settings | None = None,
           encoder: Encoder | None = None, store: ProductStore | None = None,
           rejects_path: Path | None = None, progress: bool = True,
           on_batch: Callable[[int], None] | None = None, predict_missing: bool = True) -> IngestReport:
    """Ingest the catalog at ``path`` (format ``fmt``) into the configured store.

    ``predict_missing`` fills attributes the catalog lacks (e.g. pattern on Fashion Product Images) from
    the photo by zero-shot attribute extraction, marked under ``attributes["predicted"]``.
    """
    settings = settings or get_settings()
    encoder = encoder or load_encoder(settings.encoder)
    store = store or ProductStore.open(encoder.name, encoder.dim, settings, create=True)
    rejects_path = rejects_path or settings.home / "rejects" / f"{Path(path).name or 'catalog'}-{fmt}.jsonl"
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    report = IngestReport(catalog=str(path), format=fmt, rejects_file=str(rejects_path))
    started = time.perf_counter()
    fingerprint = encoder_fingerprint(encoder)
    rows = read_catalog(path, fmt, options)
    if limit is not None:
        rows = islice(rows, limit)
    with rejects_path.open("w") as rejects, tqdm(total=limit, unit="item", disable=not progress,
                                                  desc=f"ingest {fmt}") as bar:
        def reject(item: Reject) -> None:
            report.rejected += 1
            kind = item.reason.split(":")[0]
            report.reject_reasons[kind] = report.reject_reasons.get(kind, 0) + 1
            rejects.write(json.dumps({"row": item.row, "id": item.id, "reason": item.reason}) + "\n")

        batches = _batches(iter(rows), batch_size)
        lanes = embedding_lanes()
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer, \
                ThreadPoolExecutor(lanes, initializer=set_budget, initargs=(one_thread,)) as embedders:
            ahead = deque(reader.submit(_prepare, b, store, fingerprint) for b in islice(batches, lanes + 1))
            embedding: deque[tuple[_Batch, Future | None]] = deque()
            writing: Future | None = None
            warm = True
            while ahead or embedding:
                if ahead and len(embedding) < lanes:
                    batch = ahead.popleft().result()
                    if (following := next(batches, None)) is not None:
                        ahead.append(reader.submit(_prepare, following, store, fingerprint))
                    job = None
                    if batch.products and warm:  # the first batch loads every model, once, on this thread
                        job = Future()
                        job.set_result(_embed(encoder, batch.products, batch.images, predict_missing))
                        warm = False
                    elif batch.products:
                        job = embedders.submit(_embed, encoder, batch.products, batch.images, predict_missing)
                    embedding.append((batch, job))
                    continue
                batch, job = embedding.popleft()
                report.seen += batch.size
                report.skipped_unchanged += batch.unchanged
                for item in batch.rejected:
                    reject(item)
                if job is not None:
                    ready, text_vectors, image_vectors = job.result()
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(store.upsert, ready, [batch.hashes[p.id] for p in ready], text_vectors,
                                            image_vectors)
                    report.added += len(ready)
                    report.predicted += sum(bool(p.attributes.get("predicted")) for p in ready)
                if on_batch and writing is not None:
                    writing.result()
                bar.update(batch.size)
                if on_batch:
                    on_batch(report.seen)
            if writing is not None:
                writing.result()
    report.seconds = round(time.perf_counter() - started, 2)
    report.items_per_second = round(report.seen / report.seconds, 1) if report.seconds else 0.0
    report.store_count = store.count()
    return report


def embedding_lanes() -> int:
    """Batches embedded at once, each on one core with one-thread model sessions: on 2 cores two one-thread
    lanes did more than one lane whose models use both cores (thread hand-offs inside every matrix product)."""
    return max(1, min(4, os.cpu_count() or 1))


def _embed(encoder: Encoder, products: list[Product], images: list, predict_missing: bool
           ) -> tuple[list[Product], np.ndarray, np.ndarray]:
    """Image vectors first, then attributes the catalog lacks predicted from them (never overwriting given
    ones), then text vectors of the completed products. A product without a photo uses its text vector in
    the image collection too."""
    present = [i for i, image in enumerate(images) if image is not None]
    image_vectors = np.zeros((len(products), encoder.dim), dtype=np.float32)
    if present:
        image_vectors[present] = encoder.embed_images([images[i] for i in present])
    if predict_missing and present:
        from atelier.tools.attributes import fill_missing_attributes_batch

        filled = fill_missing_attributes_batch([products[i] for i in present], [images[i] for i in present],
                                               image_vectors[present])
        for i, product in zip(present, filled):
            products[i] = product
    text_vectors = encoder.embed_texts([p.search_text() for p in products])
    missing = [i for i, image in enumerate(images) if image is None]
    image_vectors[missing] = text_vectors[missing]
    return products, text_vectors, image_vectors
