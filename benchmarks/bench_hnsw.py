"""HNSW graph degree ``M`` (Chroma's ``max_neighbors``) chosen by measurement: recall@10 against exact search,
query latency, build time and disk, for M in {8, 16, 32} at ``ef_search`` 100 / 200 / 400.

``python -m benchmarks hnsw [--size N[,N...]] [--m 8,16,32]`` (default 250,000 vectors; the figures in
``docs/performance.md`` add 1,000,000). The vectors are the real H&M + Fashion Product Images store's text
vectors (``.atelier/bench/store-56k``) and noisy copies of them, the recipe of ``benchmarks.scale_store``; the
queries are 200 real attribute phrases of that catalog, embedded by the compact encoder, asked for the served
path's pool of 100 (``ProductSearch.nearest``), of which the top 10 are compared with exact numpy search over the
same vectors (tie-aware: a served product counts when it is as similar as the exact 10th — the catalogs hold
products with identical texts, hence identical vectors). Each collection is built once (kept under
``.atelier/bench/hnsw/``; a rebuild is needed to change M), and each ``ef_search`` is set in one fresh process
and measured in another, because Chroma reads a collection's configuration when it first loads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import BENCH_HOME, CURRENT, percentile, print_table

ROOT = BENCH_HOME / "hnsw"
SOURCE = BENCH_HOME / "store-56k"
POOL = 100
EF_SEARCH = (100, 200, 400)
QUERIES = 200


def vectors_and_queries(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, 384) unit vectors and (200, 384) query vectors, cached as ``.npz`` next to the collections."""
    cached = ROOT / f"vectors-{size}.npz"
    if cached.exists():
        data = np.load(cached)
        return data["vectors"], data["queries"]
    from atelier.tools.encoders import load_encoder
    from atelier.tools.search import ProductSearch
    from atelier.tools.settings import override_settings
    from benchmarks.bench_scale import scale_queries
    from benchmarks.scale_store import noisy, read_source

    real = read_source(SOURCE)["text"]
    rng = np.random.default_rng(0)
    copies = [real] + [noisy(real, 0.02, rng) for _ in range(-(-size // len(real)) - 1)]
    vectors = np.concatenate(copies)[:size].astype(np.float32)
    index = ProductSearch.from_settings(override_settings(store=SOURCE, home=BENCH_HOME)).index
    queries = load_encoder("compact").embed_texts(scale_queries(index, QUERIES, seed=11))
    ROOT.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, queries=queries)
    return vectors, queries


def client(m: int, size: int):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(ROOT / f"m{m}-{size}"),
                                     settings=ChromaSettings(anonymized_telemetry=False))


def build(m: int, size: int) -> dict:
    """The collection with graph degree ``m`` (built once; build seconds and disk kept in ``build.json``)."""
    folder = ROOT / f"m{m}-{size}"
    done = folder / "build.json"
    if done.exists():
        return json.loads(done.read_text())
    from atelier.tools.store import MAX_BATCH

    vectors, _ = vectors_and_queries(size)
    collection = client(m, size).get_or_create_collection(
        "vectors", configuration={"hnsw": {"space": "cosine", "max_neighbors": m, "ef_search": 200}})
    started = time.perf_counter()
    for start in range(collection.count(), size, MAX_BATCH):
        stop = min(size, start + MAX_BATCH)
        collection.add(ids=[f"v{i}" for i in range(start, stop)], embeddings=vectors[start:stop])
    seconds = time.perf_counter() - started
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
    result = {"build_s": round(seconds, 1), "disk_mb": round(disk)}
    done.write_text(json.dumps(result))
    return result


def set_ef(m: int, size: int, ef: int) -> None:
    client(m, size).get_collection("vectors").modify(configuration={"hnsw": {"ef_search": ef}})


def measure(m: int, size: int) -> dict:
    """In this (fresh) process: latency of each query for the pool, recall@10 of the pool's top 10."""
    vectors, queries = vectors_and_queries(size)
    collection = client(m, size).get_collection("vectors")
    collection.query(query_embeddings=queries[:1], n_results=POOL, include=["distances"])
    times, recalls = [], []
    for q in queries:
        started = time.perf_counter()
        ids = collection.query(query_embeddings=q[None, :], n_results=POOL, include=["distances"])["ids"][0]
        times.append((time.perf_counter() - started) * 1000)
        sims = vectors @ q
        tenth = np.partition(sims, -10)[-10]
        served = sims[[int(i[1:]) for i in ids[:10]]]
        recalls.append(float(np.sum(served >= tenth - 1e-6)) / 10)
    return {"p50": round(percentile(times, 50), 2), "p95": round(percentile(times, 95), 2),
            "recall": round(float(np.mean(recalls)), 4), "worst": round(float(np.min(recalls)), 2)}


def in_fresh_process(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_hnsw", *args], text=True, capture_output=True,
                         check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[0][7:])


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks hnsw", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="250000", help="vector counts (comma-separated)")
    parser.add_argument("--m", default="8,16,32", help="graph degrees to compare (comma-separated)")
    args = parser.parse_args(list(argv or []))
    if not (SOURCE / "chroma.sqlite3").exists():
        print(f"skipped: no {SOURCE} (build it with `python -m benchmarks.scale_store --merge`, "
              f"see docs/performance.md)")
        return
    for size in (int(x) for x in args.size.split(",")):
        rows = []
        for m in (int(x) for x in args.m.split(",")):
            built = in_fresh_process("--size", str(size), "--build", str(m))
            for ef in EF_SEARCH:
                in_fresh_process("--size", str(size), "--set-ef", str(m), str(ef))
                result = in_fresh_process("--size", str(size), "--query", str(m))
                rows.append([m, ef, result["recall"], result["worst"], result["p50"], result["p95"],
                             built["build_s"], built["disk_mb"]])
                print(rows[-1], flush=True)
        print_table(f"HNSW graph degree M at {size:,} vectors: recall@10 of the 100-product pool vs exact "
                    f"(tie-aware), one query at a time (ms)", ["M", "ef_search", "recall@10", "worst query",
                                                               "p50 ms", "p95 ms", "build s", "disk MB"], rows)


def _entry(argv: list[str]) -> None:
    """Internal modes, each run in a fresh process: ``--build M``, ``--set-ef M EF`` and ``--query M``."""
    size = int(argv[argv.index("--size") + 1]) if "--size" in argv else 250_000
    if "--build" in argv:
        print("RESULT " + json.dumps(build(int(argv[argv.index("--build") + 1]), size)))
    elif "--set-ef" in argv:
        at = argv.index("--set-ef")
        set_ef(int(argv[at + 1]), size, int(argv[at + 2]))
        print("RESULT {}")
    elif "--query" in argv:
        print("RESULT " + json.dumps(measure(int(argv[argv.index("--query") + 1]), size)))
    else:
        main(argv)


if __name__ == "__main__":
    if not {"--build", "--query", "--set-ef"} & set(sys.argv):
        CURRENT.update(benchmark="hnsw", run=time.strftime("%Y-%m-%dT%H:%M:%S"))
    _entry(sys.argv[1:])
