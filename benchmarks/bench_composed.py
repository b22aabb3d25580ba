"""Composed image retrieval on real H&M pairs: a reference photo plus a change in words ("in black", "with stripes
instead", "without the print") must find the target — another colour or pattern variant of the same product —
among all 11,800 H&M articles. Test-split products only; R@1, R@10, R@50 per change type, for image-only,
text-only and embedding-sum baselines and for ``tools.composed`` (with and without its hard constraints), in one
run over one in-memory index (``MatrixIndex``) of the whole catalog.

A pair is kept only when the change names the target uniquely: no other variant of the product shares the
target's colour family and pattern. Each pair gets one change phrasing, rotating through several per type.
``--tune`` grid-searches the re-ranking weights on non-test pairs instead (never on the test split).

``python -m benchmarks.bench_composed [--n 1500] [--tune]``; embeddings are cached under .atelier/cache.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict

import numpy as np

from benchmarks.common import print_table

COLOUR_PHRASES = ["in {c}", "like this but in {c}", "same but {c}", "{c} instead", "can I get this in {c}?"]
PATTERN_PHRASES = {
    "solid": ["without the print", "plain", "in a solid colour", "same but plain"],
    "striped": ["with stripes instead", "striped", "same but with stripes"],
    "check": ["checked instead", "in a check pattern", "with checks"],
    "dotted": ["with polka dots", "dotted instead"],
    "print": ["with a print", "printed instead", "same but with a pattern"],
    "denim": ["in denim", "denim instead"],
    "melange": ["in melange", "marl instead"],
    "lace": ["in lace", "with lace"],
    "embroidered": ["with embroidery", "embroidered instead"],
    "colour-block": ["colour block instead", "with colour blocking"],
    "metallic": ["metallic instead", "with glitter"],
    "textured": ["textured instead", "in jacquard"],
}
KS = (1, 10, 50)


def colour_phrase(raw: str, family: str) -> str:
    from atelier.tools.taxonomy import get_taxonomy

    found = get_taxonomy().find_mentions(raw.lower(), ("colour",))
    return raw.lower() if found and found[0].value == family else family


def build_pairs(products, split_codes: set[str], limit: int | None, seed: int = 0) -> list[dict]:
    """(reference, target, change text, change type) for variant pairs of products in ``split_codes``."""
    by_code: dict[str, list] = defaultdict(list)
    for p in products:
        code = p.attributes.get("product_code")
        if code in split_codes:
            by_code[code].append(p)
    pairs, turn = [], itertools.count()
    for code in sorted(by_code):
        variants = by_code[code]
        for ref, target in itertools.permutations(variants, 2):
            signature = (target.colour, target.pattern)
            if sum((v.colour, v.pattern) == signature for v in variants if v.id != ref.id) != 1:
                continue
            colour_changed = target.colour != ref.colour and target.colour != "unknown"
            pattern_changed = target.pattern != ref.pattern and target.pattern in PATTERN_PHRASES
            if not (colour_changed or pattern_changed):
                continue
            i = next(turn)
            words = []
            if pattern_changed:
                options = PATTERN_PHRASES[target.pattern]
                words.append(options[i % len(options)])
            if colour_changed:
                c = colour_phrase(target.attributes.get("colour_group_name", ""), target.colour)
                words.append(COLOUR_PHRASES[i % len(COLOUR_PHRASES)].format(c=c) if not words else f"in {c}")
            kind = "colour+pattern" if colour_changed and pattern_changed else "colour" if colour_changed else "pattern"
            pairs.append({"ref": ref.id, "target": target.id, "change": " and ".join(words), "kind": kind})
    rng = np.random.default_rng(seed)
    if limit is not None and len(pairs) > limit:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), limit, replace=False))]
    return pairs


def catalog_index(encoder, log=print):
    """Every H&M article with its image and product-text embeddings (cached), as a ``MatrixIndex``."""
    from atelier.tools.attributes import encoder_fingerprint
    from atelier.tools.composed import MatrixIndex
    from atelier.tools.settings import get_settings
    from atelier.tools.training.probes import catalog_items, image_features

    items = catalog_items("hm", split="all")
    images, _ = image_features(items, encoder, log=log)
    from atelier.tools.catalogs import Reject, read_catalog

    products = {p.id: p for p in read_catalog(get_settings().datasets / "hm", "hm") if not isinstance(p, Reject)}
    ordered = [products[i] for i in items.ids]
    path = get_settings().cache_dir / "attributes" / encoder_fingerprint(encoder) / "hm-text.npy"
    if path.exists():
        texts = np.load(path)
    else:
        log(f"embedding {len(ordered)} product texts")
        texts = encoder.embed_texts([p.search_text() for p in ordered]).astype(np.float32)
        np.save(path, texts)
    return MatrixIndex(ordered, images, texts)


def baseline_ranks(index, encoder, pairs: list[dict]) -> dict[str, list[int | None]]:
    """Rank of the target (1-based; None beyond 50) for the three embedding baselines."""
    change = encoder.embed_texts([p["change"] for p in pairs])
    out: dict[str, list[int | None]] = {"image only": [], "text only": [], "embedding sum": []}
    images = index.matrix["image"]
    for pair, text in zip(pairs, change):
        ref = images[index.position[pair["ref"]]]
        total = ref + text
        for name, query in (("image only", ref), ("text only", text), ("embedding sum", total / np.linalg.norm(total))):
            sims = images @ query
            sims[index.position[pair["ref"]]] = -np.inf
            top = np.argpartition(-sims, 50)[:50]
            top = top[np.argsort(-sims[top])]
            ids = [index.ids[i] for i in top]
            out[name].append(ids.index(pair["target"]) + 1 if pair["target"] in ids else None)
    return out


def composed_ranks(engine, pairs: list[dict], references: dict | None = None) -> list[int | None]:
    """Rank of the target with ``tools.composed``; ``references`` replaces product ids by photo-only references."""
    ranks = []
    for pair in pairs:
        reference = references[pair["ref"]] if references else pair["ref"]
        ids = [r.id for r in engine.search(reference, pair["change"], k=50)]
        ranks.append(ids.index(pair["target"]) + 1 if pair["target"] in ids else None)
    return ranks


def photo_references(index, pairs: list[dict]) -> dict:
    """The reference as an uploaded photo would be: its embedding and ``extract_attributes`` — no listing, no
    title (the id only keeps the reference itself out of the results)."""
    from atelier.tools.attributes import AttributeExtractor
    from atelier.tools.composed import FACETS, Reference

    ids = sorted({p["ref"] for p in pairs})
    vectors = index.matrix["image"][[index.position[i] for i in ids]]
    predictions = AttributeExtractor().predict_features(vectors)
    return {i: Reference(id=i, attributes={f: pred[f].value for f in FACETS if f in pred}, vector=v)
            for i, v, pred in zip(ids, vectors, predictions)}


def recall(ranks: list[int | None], k: int) -> float:
    return float(np.mean([r is not None and r <= k for r in ranks])) if ranks else float("nan")


def tune(engine, pairs: list[dict]) -> None:
    """Grid search of the re-ranking weights on (non-test) pairs: candidates scored once, re-weighted many times."""
    from atelier.tools.composed import parse_change

    cached = []
    for pair in pairs:
        ref = engine.reference(pair["ref"])
        request = parse_change(pair["change"], ref)
        hard = request.filters.merged(type(request.filters)(exclude_ids=[ref.id]))
        target = engine.encoder.embed_texts([request.description(ref)])[0]
        scored = engine.rank(ref, request, target, hard, k=10**6)
        parts = np.array([[s.parts.get(c, 0.0) for c in ("photo", "target_photo", "target_text", "attributes")]
                          for s in scored], np.float32).reshape(-1, 4)
        hit = [i for i, s in enumerate(scored) if s.product.id == pair["target"]]
        cached.append((parts, hit[0] if hit else None))
    rows = []
    grid = itertools.product([0.25, 0.5, 1.0, 2.0], [0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5, 1.0], [0.0, 0.05, 0.15, 0.3])
    for weights in grid:
        w = np.array(weights, np.float32)
        ranks = []
        for parts, target in cached:
            if target is None or not len(parts):
                ranks.append(None)
                continue
            scores = parts @ w
            rank = int((scores > scores[target]).sum()) + 1
            ranks.append(rank if rank <= 50 else None)
        rows.append([*weights, recall(ranks, 1), recall(ranks, 10), recall(ranks, 50)])
    from atelier.tools.composed import DEFAULT_WEIGHTS as d

    current = [r for r in rows if r[:4] == [d.image, d.target_image, d.target_text, d.attributes]]
    rows.sort(key=lambda r: -(r[4] + r[5]))
    print_table(f"Re-ranking weights on {len(pairs)} non-test pairs (best 10 by R@1 + R@10; last: the defaults)",
                ["image", "target_image", "target_text", "attributes", "R@1", "R@10", "R@50"], rows[:10] + current)


def main(argv: list[str] | None = None) -> None:
    from atelier.tools.composed import ComposedSearch
    from atelier.tools.encoders import load_encoder
    from atelier.tools.training.probes import test_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="Pairs sampled (default 1000).")
    parser.add_argument("--tune", action="store_true", help="Tune re-ranking weights on non-test pairs.")
    args = parser.parse_args(argv or [])
    import torch

    from atelier.tools.settings import get_settings

    torch.set_num_threads(1)  # one query at a time: more threads only fight over 2 shared cores
    encoder = load_encoder()
    index = catalog_index(encoder, log=lambda m: print(m, flush=True))
    test_codes, _ = test_split(get_settings().datasets)
    engine = ComposedSearch(index, encoder)
    if args.tune:
        codes = {p.attributes.get("product_code") for p in index.products} - test_codes
        tune(engine, build_pairs(index.products, codes, min(args.n, 600), seed=1))
        return
    pairs = build_pairs(index.products, test_codes, args.n)
    kinds = sorted({p["kind"] for p in pairs})
    counts = ", ".join(f"{k}: {sum(p['kind'] == k for p in pairs)}" for k in kinds)
    print(f"encoder {encoder.name}; {len(pairs)} test-split pairs ({counts}) over {len(index.ids)} H&M articles")
    started = time.perf_counter()
    methods = baseline_ranks(index, encoder, pairs)
    methods["composed, soft constraints only"] = composed_ranks(ComposedSearch(index, encoder, hard_constraints=False),
                                                                pairs)
    methods["composed, photo reference (no listing)"] = composed_ranks(engine, pairs, photo_references(index, pairs))
    t0 = time.perf_counter()
    methods["composed (tools.composed)"] = composed_ranks(engine, pairs)
    per_query = (time.perf_counter() - t0) / max(len(pairs), 1)
    base = recall(methods["embedding sum"], 10)
    rows = []
    for name, ranks in methods.items():
        for kind in ["all", *kinds]:
            chosen = [r for r, p in zip(ranks, pairs) if kind in ("all", p["kind"])]
            rows.append([name, kind, len(chosen), *[recall(chosen, k) for k in KS],
                         f"{recall(chosen, 10) / base:.2f}x" if kind == "all" and base else ""])
    print_table("Composed retrieval on H&M variant pairs (test split, whole catalog)",
                ["method", "change", "pairs", "R@1", "R@10", "R@50", "R@10 vs embedding sum"], rows)
    print(f"composed search: {per_query * 1000:.0f} ms per query (in-memory index); total "
          f"{time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
