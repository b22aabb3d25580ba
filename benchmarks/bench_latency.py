"""Serving latency without an LLM: start-up warm-up, agent turns and HTTP turns, on one store.

``python -m benchmarks latency [--store DIR]`` (default: the H&M + FPI store ``.atelier/bench/store-56k``, else
the synthetic 56k store, else the H&M benchmark store). After ``Runtime.warm()``, 40 shoppers each open a new
session with a first request (category + colour [+ gender], from the store's own products) and send one follow-up
("cheaper", "in blue", "show me more", ...): every turn is timed to its ``done`` event, first turns included.
The same 40 first requests then go through the HTTP API in process (FastAPI ``TestClient``: create a session,
post the message, read the whole SSE stream). The baseline, in the same run, is a cold first turn: a fresh
``Runtime`` without warm-up answering the first request.
"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_scale import rss_mb, scale_queries
from benchmarks.common import BENCH_HOME, percentile, print_table

FOLLOW_UPS = ["cheaper", "in blue", "show me more", "something similar but black", "for men instead",
              "under 30", "not that colour"]
SHOPPERS = 40


def default_store() -> Path:
    for path in (BENCH_HOME / "store-56k", BENCH_HOME / "scale" / "syn56k", BENCH_HOME / "store-compact"):
        if (path / "chroma.sqlite3").exists():
            return path
    raise SystemExit("no benchmark store: build one with `python -m benchmarks.scale_store` or ingest H&M")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="store folder (default: the 56k H&M + FPI store)")
    parser.add_argument("--shoppers", type=int, default=SHOPPERS, help=f"sessions (default {SHOPPERS})")
    args = parser.parse_args(list(argv or []))
    store = args.store or default_store()
    from atelier.assistant.runtime import Runtime
    from atelier.assistant.turn import Assistant
    from atelier.memory.store import SessionStore
    from atelier.tools.settings import override_settings

    home = Path(tempfile.mkdtemp(prefix="atelier-latency-"))
    settings = override_settings(store=store, home=home, cache=BENCH_HOME / "cache", rate_limit_per_minute=100_000)

    cold = Assistant(runtime=Runtime(settings), sessions=SessionStore(home / "cold.db"))
    queries = scale_queries(cold.engine.index, args.shoppers, seed=11)
    started = time.perf_counter()
    list(cold.turn(None, queries[0]))
    cold_first = (time.perf_counter() - started) * 1000

    runtime = Runtime(settings)
    started = time.perf_counter()
    runtime.warm()
    warm_s = time.perf_counter() - started
    assistant = Assistant(runtime=runtime, sessions=SessionStore(home / "warm.db"))
    rng = random.Random(5)
    first, follow = [], []
    slowest = (0.0, "")
    for query in queries:
        session = assistant.new_session()
        for text, bucket in ((query, first), (rng.choice(FOLLOW_UPS), follow)):
            started = time.perf_counter()
            events = list(assistant.turn(session, text))
            bucket.append((time.perf_counter() - started) * 1000)
            slowest = max(slowest, (bucket[-1], f"{query!r} then {text!r}" if bucket is follow else repr(text)))
            assert events[-1].type == "done", events[-1]
    http = http_turns(runtime, queries)
    turns = first + follow
    products = len(runtime.search.index)
    rows = [["agent turn, all (warm)", len(turns), percentile(turns, 50), percentile(turns, 95), max(turns)],
            ["agent first turn of a session", len(first), percentile(first, 50), percentile(first, 95), max(first)],
            ["agent follow-up turn", len(follow), percentile(follow, 50), percentile(follow, 95), max(follow)],
            ["HTTP turn (new session + SSE stream)", len(http), percentile(http, 50), percentile(http, 95),
             max(http)],
            ["baseline: first turn of a cold runtime", 1, cold_first, cold_first, cold_first]]
    print_table(f"turn latency in ms, no LLM, {products} products ({store.name}); warm-up {warm_s:.1f}s, "
                f"RSS {rss_mb():.0f} MB (peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f})",
                ["what", "turns", "p50", "p95", "max"], [[r[0], r[1], *[round(x, 1) for x in r[2:]]] for r in rows])
    print(f"slowest turn: {slowest[0]:.0f} ms, {slowest[1]}")
    print(f"cold first turn / warm first-turn p50: {cold_first / max(percentile(first, 50), 1e-9):.1f}x")


def http_turns(runtime, queries: list[str]) -> list[float]:
    from fastapi.testclient import TestClient

    from atelier.ui.api import create_app

    client = TestClient(create_app(runtime=runtime))
    timings = []
    for query in queries:
        started = time.perf_counter()
        created = client.post("/v1/sessions").json()
        headers = {"Authorization": f"Bearer {created['token']}"}
        with client.stream("POST", f"/v1/sessions/{created['session_id']}/messages", json={"text": query},
                           headers=headers) as response:
            body = "".join(response.iter_text())
        timings.append((time.perf_counter() - started) * 1000)
        assert "event: done" in body, body[-500:]
    return timings


if __name__ == "__main__":
    main(sys.argv[1:])
