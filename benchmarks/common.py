"""Shared benchmark plumbing: the full H&M catalog ingested once into a benchmark store, and the test split."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from atelier.tools.settings import Settings, apply_offline_defaults, get_settings, override_settings

apply_offline_defaults()

BENCH_HOME = Path(__file__).resolve().parent.parent / ".atelier" / "bench"
RESULTS = Path(__file__).resolve().parent / "results"
CURRENT = {"benchmark": "adhoc"}
"""The benchmark being run (set by ``python -m benchmarks``): its tables are recorded under its name."""


def datasets() -> Path:
    return get_settings().datasets


def hm_test_product_codes() -> set[str]:
    return set((datasets() / "splits" / "hm_test_product_codes.txt").read_text().split())


def fpi_test_ids() -> set[str]:
    return set((datasets() / "splits" / "fpi_test_ids.txt").read_text().split())


def full_hm_settings(encoder: str = "compact") -> Settings:
    """Settings for a store holding the whole H&M catalog (ingested on first use, resumable, then skipped)."""
    from atelier.tools.ingest import ingest

    settings = override_settings(home=BENCH_HOME, store=BENCH_HOME / f"store-{encoder.replace(':', '_')}",
                                 db=BENCH_HOME / "bench.db", encoder=encoder)
    report = ingest(settings.datasets / "hm", "hm", settings=settings, progress=True, batch_size=128)
    if report.added:
        print(f"ingested {report.added} H&M articles into the benchmark store in {report.seconds:.0f}s "
              f"({report.items_per_second} items/s)")
    return settings


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine_load() -> str:
    """What the figures were measured under: the 1-minute load average against the cores."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """A plain fixed-width table (benchmarks print, they do not assert), also recorded for ``report.md``."""
    record_table(title, header, rows)
    cells = [header] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def record_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """Keep the table as this benchmark's latest result (``benchmarks/results/<name>.json``)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{CURRENT['benchmark']}.json"
    tables = json.loads(path.read_text()) if path.exists() else {}
    if tables.get("_run") != CURRENT.get("run"):
        tables = {"_run": CURRENT.get("run")}
    tables[title] = {"header": header, "rows": [[c if isinstance(c, (int, float, str)) or c is None else str(c)
                                                   for c in row] for row in rows],
                     "measured": time.strftime("%Y-%m-%d %H:%M"), "load": machine_load()}
    path.write_text(json.dumps(tables, indent=1))


def record_plot(name: str, figure) -> Path:
    """Save a matplotlib figure as ``benchmarks/results/<name>.png`` (linked from ``report.md``)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.png"
    figure.savefig(path, dpi=110)
    return path


def store_index(store_path: Path | None = None, encoder: str = "compact"):
    """Every product of a store, with its image and text vectors, as an in-memory ``MatrixIndex`` (default: the
    full H&M benchmark store, read as it is — build it with ``full_hm_settings()``)."""
    import numpy as np

    from atelier.tools.candidates import MatrixIndex
    from atelier.tools.encoders import load_encoder
    from atelier.tools.store import ProductStore, product_from_metadata

    path = store_path or BENCH_HOME / f"store-{encoder.replace(':', '_')}"
    settings = override_settings(store=path, encoder=encoder)
    model = load_encoder(encoder)
    store = ProductStore.open(model.name, model.dim, settings)
    products = [product_from_metadata(meta) for _, meta, _ in store.iter_metadata()]
    ids = [p.id for p in products]
    images: dict[str, np.ndarray] = {}
    texts: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), 5000):
        images.update(store.vectors(ids[start:start + 5000], "image"))
        texts.update(store.vectors(ids[start:start + 5000], "text"))
    products = [p for p in products if p.id in images and p.id in texts]
    return MatrixIndex(products, np.stack([images[p.id] for p in products]), np.stack([texts[p.id] for p in products]))
