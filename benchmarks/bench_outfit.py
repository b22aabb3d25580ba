"""Outfit completion quality: fill-in-the-blank (FITB) on held-out H&M baskets, and slot sanity.

FITB, as in the Polyvore Outfits benchmark (Vasileva et al. 2018) that OutfitTransformer (Sarkar et al. 2023)
reports on: hide one item of a basket, offer it among 3 negatives of the same group, and count how often a
method ranks it first (random: 25%). Held-out baskets are the same-customer-same-day baskets that touch a
test-split article (never trained on); the blank is always a test-split article and the negatives are
test-split articles of its group too, so every choice is unseen in training. Two negative pools: any test
article of the group, and only test articles someone bought (controls for a "was ever purchased" prior). A
larger pseudo-set uses one customer's purchases within 30 days instead of one day (weaker outfit signal).

Slot sanity runs ``complete_outfit`` around test-split anchors on the store: the share of suggestions in an
already filled slot (must be 0), in a slot the rule table calls for, and colour-variant duplicates.

``python -m benchmarks outfit`` uses the shared full-H&M benchmark store; ``--store DIR`` another store (a partial
one, such as the test sample, gets description vectors from the encoder and no photo-similarity row).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import full_hm_settings, percentile, print_table

SEEDS = range(5)
PSEUDO_WINDOW_DAYS = 30
SANITY_ANCHORS = 120


def embedding_parts(bank, questions, kind: str) -> list[dict[str, np.ndarray]]:
    """The classic baseline: cosine of each choice to the mean vector of the context items."""
    vectors = bank.text if kind == "text" else bank.image
    out = []
    for q in questions:
        mean = np.mean([vectors[i] for i in q.context], axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        out.append({"embedding": np.array([float(vectors[c] @ mean) for c in q.choices])})
    return out


def fitb_rows(scorer, bank, questions, fallback_blend: dict[str, float]) -> list[list[object]]:
    from atelier.tools.training.outfit import fitb_accuracy, question_parts

    parts = question_parts(scorer, bank, questions)
    methods: dict[str, float | None] = {
        "random": 0.25,
        "embedding similarity (description)": fitb_accuracy(embedding_parts(bank, questions, "text"),
                                                            {"embedding": 1.0}),
        "embedding similarity (photo)": fitb_accuracy(embedding_parts(bank, questions, "image"), {"embedding": 1.0})
        if bank.image else None,
        "style (description, per outfit item)": fitb_accuracy(parts, {"style": 1.0}),
        "colour / pattern / department rules": fitb_accuracy(parts, {"rules": 1.0}),
        "basket co-occurrence lift": fitb_accuracy(parts, {"cooc": 1.0}),
        "set encoder alone": fitb_accuracy(parts, {"model": 1.0}),
        "fallback blend (rules + style, no weights)": fitb_accuracy(parts, fallback_blend),
        "shipped blend (complete_outfit)": fitb_accuracy(parts, scorer.blend),
    }
    base = methods["embedding similarity (description)"]
    n = len(questions) // len(SEEDS)
    rows = []
    for name, acc in methods.items():
        if acc is None:
            continue
        half = 1.96 * math.sqrt(acc * (1 - acc) / max(n, 1))
        rows.append([name, acc, f"±{half:.3f}", acc / 0.25, acc / base if base else float("nan")])
    return rows


def per_group(scorer, bank, questions) -> list[list[object]]:
    from atelier.tools.training.outfit import fitb_accuracy, question_parts

    parts = question_parts(scorer, bank, questions)
    emb = embedding_parts(bank, questions, "text")
    by: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by[q.group].append(i)
    rows = []
    for group, idx in sorted(by.items(), key=lambda kv: -len(kv[1])):
        rows.append([group, len(idx) // len(SEEDS), fitb_accuracy([emb[i] for i in idx], {"embedding": 1.0}),
                     fitb_accuracy([parts[i] for i in idx], scorer.blend)])
    return rows


def slot_sanity(search, data, n: int = SANITY_ANCHORS) -> list[list[object]]:
    from atelier.tools.outfit import OutfitCompleter, filled_slots, plausible_slots

    completer = OutfitCompleter(search.store, search.encoder)
    rng = random.Random(0)
    by_group: dict[str, list[str]] = defaultdict(list)
    in_store = {p.id for p in search.store.get(sorted(data.test_ids))}
    for pid in sorted(in_store):
        by_group[data.products[pid].group].append(pid)
    anchors: list[str] = []
    groups = sorted(by_group)
    while len(anchors) < n and any(by_group.values()):
        for g in groups:
            if by_group[g] and len(anchors) < n:
                anchors.append(by_group[g].pop(rng.randrange(len(by_group[g]))))
    total = filled = plausible = dup = 0
    slots_with_items = slots = 0
    latencies = []
    for pid in anchors:
        anchor_group = search.store.get_product(pid).group  # ingestion may have predicted a missing group
        started = time.perf_counter()
        result = completer.complete([pid], k=5)
        latencies.append((time.perf_counter() - started) * 1000)
        for slot in result:
            slots += 1
            slots_with_items += bool(slot.items)
            families = Counter(str(data.products[i.id].attributes.get("product_code")) for i in slot.items)
            dup += sum(c - 1 for c in families.values())
            for item in slot.items:
                total += 1
                filled += item.group in filled_slots([anchor_group])
                plausible += item.group in plausible_slots([anchor_group]) and item.group == slot.group
    return [[len(anchors), slots, total, filled / max(total, 1), plausible / max(total, 1),
             dup / max(total, 1), slots_with_items / max(slots, 1), percentile(latencies, 50),
             percentile(latencies, 95)]]


def store_vectors(store, ids: list[str], kind: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), 2000):
        out.update(store.vectors(ids[start:start + 2000], kind))
    return out


def main(argv: list[str] | None = None) -> None:
    from atelier.tools.outfit_model import load_scorer, text_space_fingerprint
    from atelier.tools.search import ProductSearch
    from atelier.tools.training.outfit import (FeatureBank, catalog_vectors, fitb_questions, load_outfit_data,
        multi_group)

    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks outfit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="another store (default: the full H&M bench store)")
    args = parser.parse_args(list(argv or []))
    if args.store:  # a copy of the benchmark store (Chroma stores are not safe to share between processes)
        from atelier.tools.settings import override_settings

        settings = override_settings(store=args.store, encoder="compact")
    else:
        settings = full_hm_settings()
    search = ProductSearch.from_settings(settings)
    scorer = load_scorer(encoder_fingerprint=text_space_fingerprint(search.encoder))
    data = load_outfit_data(settings.datasets)
    ids = sorted(data.products)
    text, image = store_vectors(search.store, ids, "text"), store_vectors(search.store, ids, "image")
    if len(text) < len(ids):  # a partial store (e.g. the test sample): descriptions re-embedded, no photo row
        print(f"the store holds {len(text)} of {len(ids)} H&M articles: description vectors from the encoder "
              "(as ingestion computes them), no photo-similarity baseline")
        text, image = catalog_vectors([data.products[i] for i in ids], search.encoder), {}
    bank = FeatureBank(data.products, text, image)
    fallback = {"style": 1.0, "rules": 1.0}
    if scorer.meta is not None and scorer.meta.notes.startswith("fallback blend"):
        import ast

        fallback = ast.literal_eval(scorer.meta.notes.split(":", 1)[1].strip())
    heldout = multi_group(data.heldout, data.products)
    pseudo = load_outfit_data(settings.datasets, PSEUDO_WINDOW_DAYS)
    pseudo_heldout = multi_group(pseudo.heldout, pseudo.products)
    test_all = sorted(data.test_ids)
    test_bought = sorted(data.test_ids & data.purchased)
    sets = {
        "held-out baskets; negatives: test articles of the slot": (heldout, test_all),
        "held-out baskets; negatives: purchased test articles of the slot": (heldout, test_bought),
        f"pseudo-set: {PSEUDO_WINDOW_DAYS}-day customer windows; negatives: test articles": (pseudo_heldout, test_all),
    }
    print(f"{len(data.baskets)} same-day baskets; {len(multi_group(data.train, data.products))} multi-group training "
          f"baskets; {len(heldout)} multi-group held-out baskets; {len(pseudo_heldout)} held-out "
          f"{PSEUDO_WINDOW_DAYS}-day windows. Model: {'trained weights' if scorer.learnt else 'fallback (no weights)'}"
          f"{'' if scorer.meta is None else ' ' + str(scorer.meta.metrics)}")
    main_questions = []
    for title, (baskets, negatives) in sets.items():
        questions = [q for seed in SEEDS for q in fitb_questions(baskets, data.products, data.test_ids, negatives,
                                                                 seed=seed)]
        main_questions = main_questions or questions
        print_table(f"FITB, 1 of 4 — {title} ({len(questions) // len(SEEDS)} questions x {len(SEEDS)} negative draws)",
                    ["method", "accuracy", "95% CI", "x random", "x embedding"], fitb_rows(scorer, bank, questions,
                                                                                          fallback))
    print_table("FITB by blank's group (held-out baskets, test-article negatives)",
                ["group", "questions", "embedding (description)", "shipped blend"],
                per_group(scorer, bank, main_questions))
    print("\nReference (different data, not comparable): OutfitTransformer reports 67.1% FITB on Polyvore Outfits "
          "(non-disjoint; type-aware embeddings 57.8%), with curated outfits rather than purchase baskets.")
    print_table(f"slot sanity: complete_outfit around test-split anchors ({search.store.count()}-article store, k=5)",
                ["anchors", "slots", "suggestions", "in a filled slot", "in a rule-table slot", "colour-variant dups",
                 "slots non-empty", "p50 ms", "p95 ms"], slot_sanity(search, data))


if __name__ == "__main__":
    main()
