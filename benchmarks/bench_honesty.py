"""Honesty: does the assistant say "nothing matches" when nothing does, and name what no result satisfies?

On the held-out queries of ``benchmarks/data/honesty.yaml`` (in-catalog, out-of-domain, fashion the catalog does
not carry; see ``benchmarks/honesty_set.py``), on the full H&M store and on the H&M test sample store:

1. accuracy of the "nothing matches" decision per group, before (the single similarity floor
   ``ATELIER_RELEVANCE_THRESHOLD``: a search that returned results was presented as matches), with the floor
   plus request coverage (what an encoder without a calibration gets) and after (the gate calibrated for this
   encoder plus coverage), with the share of in-catalog queries wrongly refused;
2. on held-out partial-match queries (the catalog carries the garment but no article has every term), the share
   whose reply names every unmatched term as not found — the assistant's template reply (no LLM) against the
   reply the same results got before ("Here are 10 …").

``python -m benchmarks.bench_honesty [--store DIR] [--sample-store DIR] [--split dev|held_out] [--no-agent]``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from atelier.tools.settings import Settings, get_settings, override_settings
from benchmarks.common import BENCH_HOME, full_hm_settings, print_table, timer

REPO = Path(__file__).resolve().parent.parent
GROUPS = ("in_catalog", "out_of_domain", "not_carried")


def sample_store() -> Path:
    """The tests' H&M sample store for the current encoder weights (``tests/conftest.py`` builds it)."""
    digest = hashlib.sha1()
    for path in sorted((REPO / "tools" / "encoders" / "weights").glob("*")):
        digest.update(path.name.encode() + path.read_bytes())
    return REPO / ".atelier" / "test-stores" / f"hm-sample-{digest.hexdigest()[:12]}"


def decision_table(settings: Settings, split: str, label: str) -> list:
    """Rows of the decision table for one store; returns the observations (for the agent part)."""
    from atelier.tools.search import ProductSearch
    from atelier.tools.training.relevance import decide, load_queries, observe, relabel, score

    engine = ProductSearch.from_settings(settings)
    queries = [q for q in relabel(load_queries(REPO / "benchmarks" / "data" / "honesty.yaml"), engine)
               if q["split"] == split]
    with timer() as elapsed:
        observations = observe(engine, queries)
    calibration = engine.gate.calibration
    before = score(observations, None, settings.relevance_threshold, coverage=False)
    fallback = score(observations, None, settings.relevance_threshold)
    after = score(observations, calibration) if calibration is not None else fallback
    rows = []
    for key in (*GROUPS, "accuracy", "in_catalog_refused"):
        n = sum(o.group == key for o in observations) if key in GROUPS else len(observations)
        n = sum(not o.nothing_matches for o in observations) if key == "in_catalog_refused" else n
        ratio = after[key] / before[key] if before[key] else float("inf")
        rows.append([key, n, before[key], fallback[key], after[key], f"{ratio:.2f}x"])
    fitted = "none (single floor)" if calibration is None else \
        f"{calibration.fingerprint} on {calibration.metrics.get('store_size', '?')} products"
    print_table(f"'nothing matches' decision, {split} queries, {label} ({engine.store.count()} products; "
                f"gate {fitted}; {elapsed() / max(1, len(queries)) * 1000:.0f} ms/query)",
                ["group", "n", "before: one floor", "floor + coverage", "after: calibrated", "after/before"], rows)
    for o in [o for o in observations if decide(o, calibration) != o.nothing_matches][:12]:
        p = calibration.probability(o.signals) if calibration is not None else float("nan")
        print(f"  wrong: {o.query!r} ({o.group}; label nothing_matches={o.nothing_matches}, p={p:.3f}, "
              f"complete={o.complete})")
    return observations


def named_as_missing(reply: str, term: str) -> bool:
    """The reply names ``term`` in a sentence that says it is missing ("I have no golf shoes")."""
    from atelier.assistant.grounding import false_claims
    from atelier.tools.coverage import stems, text_stems

    sentences = re.split(r"(?<=[.!?])\s+", reply)
    wanted = [stems(word) for word in term.lower().split()]
    return any(all(w & text_stems(s) for w in wanted) and not false_claims(s, [term]) and
               re.search(r"\b(?:no|not|nothing|none|don't)\b", s, re.I) for s in sentences)


def naming_table(settings: Settings, observations: list, label: str) -> None:
    """Replies to partial-match queries: is every unmatched term named as not found?"""
    from atelier.assistant.replies import results_reply, what_text
    from atelier.assistant.turn import Assistant
    from atelier.memory.state import SessionMemory

    partial = [o for o in observations if o.group != "out_of_domain" and o.nothing_matches and o.unmatched]
    bot = Assistant(settings, tool_model=None)
    now = then = 0
    misses = []
    for o in partial:
        session = bot.new_session()
        events = list(bot.turn(session, o.query))
        reply = next(e.reply for e in events if e.type == "done")
        shown = [r for e in events if e.type == "products" for r in e.results]
        memory = SessionMemory.model_validate(bot.memory(session))
        details = " ".join(d.text for d in memory.details[-2:])
        old = results_reply("search", shown, what=what_text(memory.constraints, fallback=f'matches for "{details}"'))
        ok = all(named_as_missing(reply, t) for t in o.unmatched)
        now += ok
        then += all(named_as_missing(old, t) for t in o.unmatched)
        if not ok:
            misses.append((o.query, o.unmatched, reply))
    n = max(1, len(partial))
    print_table(f"replies naming every unmatched term as not found, {label}",
                ["partial-match queries", "before", "after"], [[len(partial), then / n, now / n]])
    for query, terms, reply in misses[:8]:
        print(f"  missed: {query!r} unmatched={terms}: {reply[:160]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="Full-catalog store (default: the benchmark store).")
    parser.add_argument("--sample-store", type=Path, help="H&M sample store (default: the tests' store).")
    parser.add_argument("--split", default="held_out", choices=["dev", "held_out"])
    parser.add_argument("--no-agent", action="store_true", help="Skip the reply check.")
    parser.add_argument("--no-full", action="store_true", help="Only the sample store.")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    stores = []
    if not args.no_full:
        stores.append(("full H&M store", (lambda: override_settings(store=args.store, home=BENCH_HOME, db=BENCH_HOME /
                                                                     "bench.db")) if args.store else full_hm_settings))
    sample = args.sample_store or sample_store()
    if sample.is_dir():
        stores.append(("H&M test sample store", lambda: override_settings(
            store=sample, home=BENCH_HOME, db=BENCH_HOME / "bench-honesty.db")))
    else:
        print(f"no sample store at {sample} (run the tests once to build it)")
    for label, make in stores:
        settings = make()
        observations = decision_table(settings, args.split, label)
        if not args.no_agent:
            naming_table(get_settings(), observations, label)


if __name__ == "__main__":
    main()
