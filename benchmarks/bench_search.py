"""Search quality and speed: precision@10 (every named attribute matches) for ~200 queries built from
attribute combinations that exist in the H&M catalog — dense-only vs hybrid vs hybrid + parsed filters,
in one run, on the full H&M store."""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

from atelier.tools.settings import override_settings
from benchmarks.common import full_hm_settings, percentile, print_table

GENDER_PHRASES = {"women": "for women", "men": "for men", "kids": "for kids"}
SYNONYMS = {"sneakers": "trainers", "navy": "navy blue", "t-shirt": "tee", "trousers": "pants"}


def build_queries(metas: list[dict], n: int = 200, seed: int = 7) -> list[tuple[str, dict[str, str]]]:
    """Queries from attribute combinations with at least 10 catalog items each."""
    combos: dict[tuple, int] = Counter()
    for m in metas:
        if m["category"] == "unknown":
            continue
        combos[("category", m["category"], "colour", m["colour"])] += 1
        if m["pattern"] not in ("solid", "unknown"):
            combos[("category", m["category"], "pattern", m["pattern"])] += 1
        combos[("category", m["category"], "colour", m["colour"], "gender", m["gender"])] += 1
    eligible = sorted(c for c, count in combos.items() if count >= 10)
    rng = random.Random(seed)
    by_kind: dict[int, list] = {}
    for combo in eligible:
        kind = len(combo) if combo[2] == "colour" else 5
        by_kind.setdefault(kind, []).append(combo)
    chosen = []
    for kind in sorted(by_kind):
        chosen += rng.sample(by_kind[kind], min(len(by_kind[kind]), n // 3 + 1))
    queries = []
    for combo in chosen[:n]:
        attrs = dict(zip(combo[::2], combo[1::2]))
        words = [attrs.get("colour") or attrs.get("pattern"), attrs["category"]]
        words = [SYNONYMS.get(w, w) if rng.random() < 0.3 else w for w in words]
        text = " ".join(words)
        if "gender" in attrs:
            text += " " + GENDER_PHRASES.get(attrs["gender"], attrs["gender"])
        queries.append((text, attrs))
    return queries


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="another store (default: the full H&M bench store)")
    args = parser.parse_args(list(argv or []))
    if args.store:
        settings = override_settings(store=args.store)
    else:
        settings = full_hm_settings()
    from atelier.tools.search import ProductSearch

    engine = ProductSearch.from_settings(settings)
    metas = [meta for _, meta, _ in engine.store.iter_metadata()]
    queries = build_queries(metas)
    print(f"{len(queries)} queries over {len(metas)} H&M products")
    modes = {"dense only": dict(mode="dense", parse=False), "hybrid": dict(mode="hybrid", parse=False),
             "hybrid + parsed filters": dict(mode="hybrid", parse=True)}
    engine.search("warm up", k=10)
    started = time.perf_counter()
    for text, _ in queries:
        engine.embed_query(text)
    print(f"query encoding: {(time.perf_counter() - started) / len(queries) * 1000:.1f} ms per query (then cached, "
          "so every mode below is timed without it)")
    rows = []
    baseline = None
    for label, kwargs in modes.items():
        precisions, latencies = [], []
        for text, attrs in queries:
            started = time.perf_counter()
            results = engine.search(text, k=10, **kwargs)
            latencies.append((time.perf_counter() - started) * 1000)
            hits = sum(all(getattr(r, f) == v for f, v in attrs.items()) for r in results)
            precisions.append(hits / 10)
        p10 = sum(precisions) / len(precisions)
        baseline = baseline or p10
        rows.append([label, p10, p10 / baseline, percentile(latencies, 50), percentile(latencies, 95)])
    print_table("precision@10, all named attributes match (H&M, full catalog)",
                ["mode", "P@10", "x dense", "p50 ms", "p95 ms"], rows)


if __name__ == "__main__":
    main(sys.argv[1:])
