"""Composed image retrieval on real H&M pairs: a reference plus a change in words ("in black", "with stripes
instead", "without the print", "with long sleeves", "looser") must find the target among all 11,800 H&M
articles. Test-split products only.

Change types: colour, pattern and colour + pattern (the target is another variant of the reference's product,
named uniquely by the change: no other variant shares its colour family and pattern); "pattern, any colour" (only
a pattern is asked for, "got this with stripes?": any variant of the product with that pattern is a hit); and
sleeves, length, fit
(the target is any article of the reference's category, gender and colour whose description states the asked
detail — a relaxed target set, FashionIQ-style, since H&M has no such variants of one product).

Reference kinds: the shown item (a catalog id: its listing), an uploaded photo of it (the catalog photo file),
a degraded upload (``tools.training.recognition.degrade``: crop, downscale, rotation, frame, JPEG), and an
out-of-catalog photo of a similar garment (the reference article removed from the catalog, its siblings kept).

Methods, in one run over one in-memory index (``MatrixIndex``) of the whole catalog: image-only, text-only and
embedding-sum baselines with each kind's photo vector; composed search as it was before recognition, variant
families and the shape channel (``before``); and ``tools.composed``. R@1 / R@10 per change type.
``--tune`` grid-searches the re-ranking weights on non-test pairs instead (never on the test split).

``python -m benchmarks.bench_composed [--n 600] [--details 120] [--store PATH] [--tune]``
"""

from __future__ import annotations

import argparse
import itertools
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, store_index

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
            pairs.append({"ref": ref.id, "targets": [target.id], "change": " and ".join(words), "kind": kind})
        for ref in variants:
            for pattern in sorted({v.pattern for v in variants} - {ref.pattern}):
                if pattern not in PATTERN_PHRASES:
                    continue
                targets = [v.id for v in variants if v.pattern == pattern]
                phrase = PATTERN_PHRASES[pattern][next(turn) % len(PATTERN_PHRASES[pattern])]
                pairs.append({"ref": ref.id, "targets": targets, "change": phrase, "kind": "pattern, any colour"})
    return sample_pairs(pairs, limit, np.random.default_rng(seed))


def sample_pairs(pairs: list[dict], limit: int | None, rng: np.random.Generator) -> list[dict]:
    """At most ``limit`` pairs, stratified: pattern changes are rare among H&M variants (a plain random sample of
    600 held 6 pattern pairs), so each kind other than colour gets up to a sixth of the sample, colour the rest."""
    if limit is None or len(pairs) <= limit:
        return pairs
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_kind[p["kind"]].append(i)
    kept = []
    for kind, rows in sorted(by_kind.items()):
        if kind != "colour":
            kept += list(rng.choice(rows, min(len(rows), limit // 6), replace=False))
    colour = by_kind.get("colour", [])
    kept += list(rng.choice(colour, min(len(colour), limit - len(kept)), replace=False)) if colour else []
    return [pairs[i] for i in sorted(kept)]


DETAIL_PHRASES = {
    "sleeves": {"long": ["with long sleeves", "same but long-sleeved"],
                "short": ["with short sleeves", "a short-sleeved one"],
                "sleeveless": ["sleeveless", "same but without sleeves"]},
    "length": {"long": ["longer", "a maxi version"], "short": ["shorter", "a mini version"], "knee": ["knee-length"],
               "midi": ["midi instead"]},
    "fit": {"loose": ["looser", "in a relaxed fit"], "slim": ["slimmer", "fitted instead"]},
}
KINDS = ("shown item", "clean photo", "degraded photo", "out-of-catalog photo")
CHANGES = ("colour", "pattern", "pattern, any colour", "colour+pattern", "sleeves", "length", "fit")


def stated_details(description: str) -> dict[str, set[str]]:
    """The detail values an H&M description states (the weak-label rules of ``prompts/attributes.yaml``)."""
    from atelier.tools.composed import _detail_rules

    return {a: {v for v, rx in rules if rx.search(description or "")} for a, rules in _detail_rules().items()
            if a in DETAIL_PHRASES}


def build_detail_pairs(products, split_codes: set[str], per_attribute: int, seed: int = 0) -> list[dict]:
    """(reference, target set, change, attribute) where the change asks for a detail the reference lacks and
    catalog articles of the same category, gender and colour state it."""
    stated = {p.id: stated_details(p.description) for p in products}
    by_look: dict[tuple, list] = defaultdict(list)
    for p in products:
        by_look[(p.category, p.gender, p.colour)].append(p)
    rng = np.random.default_rng(seed)
    pairs = []
    for attribute, phrases in DETAIL_PHRASES.items():
        found = []
        for ref in products:
            if ref.attributes.get("product_code") not in split_codes or len(stated[ref.id][attribute]) != 1:
                continue
            for value, options in phrases.items():
                if value in stated[ref.id][attribute]:
                    continue
                targets = [p.id for p in by_look[(ref.category, ref.gender, ref.colour)]
                           if p.id != ref.id and stated[p.id][attribute] == {value}]
                if targets:
                    found.append({"ref": ref.id, "targets": targets, "kind": attribute,
                                  "change": options[len(found) % len(options)]})
        if len(found) > per_attribute:
            found = [found[i] for i in sorted(rng.choice(len(found), per_attribute, replace=False))]
        pairs += found
    return pairs


class Hidden:
    """An index with some products removed: an out-of-catalog reference really is not in the catalog."""

    def __init__(self, index, hidden: set[str]) -> None:
        self.index, self.hidden = index, hidden

    def query(self, vector, kind, filters, k):
        from atelier.tools.query_parser import SearchFilters

        return self.index.query(vector, kind, filters.merged(SearchFilters(exclude_ids=sorted(self.hidden))), k)

    def family_members(self, family: str) -> list[str]:
        return [i for i in self.index.family_members(family) if i not in self.hidden]

    def get_product(self, product_id: str):
        return None if product_id in self.hidden else self.index.get_product(product_id)

    def __getattr__(self, name):
        return getattr(self.index, name)


def photos(index, ids: list[str], kind: str, seed: int = 0) -> dict:
    """The uploaded photo of each reference for one kind (the catalog file, or a degraded copy of it)."""
    from atelier.tools.images import load_image
    from atelier.tools.training.recognition import degrade

    out = {}
    for pid in ids:
        image = load_image(index.get_product(pid).image_path)
        if kind == "degraded photo":
            image = degrade(image, np.random.default_rng(seed + zlib.crc32(pid.encode())))
        out[pid] = image
    return out


def first_rank(ids: list[str], targets: list[str]) -> int | None:
    hits = [ids.index(t) + 1 for t in targets if t in ids]
    return min(hits) if hits else None


def baseline_ranks(index, encoder, pairs: list[dict], vectors: dict) -> dict[str, list[int | None]]:
    """Rank of the first target (1-based; None beyond 50) for the three embedding baselines."""
    change = encoder.embed_texts([p["change"] for p in pairs])
    out: dict[str, list[int | None]] = {"image only": [], "text only": [], "embedding sum": []}
    images = index.matrix["image"]
    for pair, text in zip(pairs, change):
        ref = vectors[pair["ref"]]
        total = ref + text
        for name, query in (("image only", ref), ("text only", text), ("embedding sum", total / np.linalg.norm(total))):
            sims = images @ query
            sims[index.position[pair["ref"]]] = -np.inf
            top = np.argpartition(-sims, 50)[:50]
            out[name].append(first_rank([index.ids[i] for i in top[np.argsort(-sims[top])]], pair["targets"]))
    return out


def composed_ranks(make_engine, pairs: list[dict], kind: str, images: dict, vectors: dict,
                   seen: dict | None = None) -> list[int | None]:
    """Rank of the first target with an engine built by ``make_engine(hidden ids)``; ``seen`` collects how each
    uploaded reference was read (recognised as which id, or a photo)."""
    from atelier.tools.query_parser import SearchFilters

    ranks, references = [], {}
    for pair in pairs:
        engine = make_engine({pair["ref"]} if kind == "out-of-catalog photo" else set())
        key = pair["ref"]
        if kind == "shown item":
            reference = key
        elif kind == "out-of-catalog photo" or key not in references:
            reference = references[key] = engine.photo(images[key], vectors[key])
        else:
            reference = references[key]
        if seen is not None and kind != "shown item":
            seen[(kind, key)] = reference.id if reference.kind == "recognised" else None
        found = engine.search(reference, pair["change"], k=50, filters=SearchFilters(exclude_ids=[key]))
        ranks.append(first_rank([r.id for r in found], pair["targets"]))
    return ranks


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
        hit = [i for i, s in enumerate(scored) if s.product.id in pair["targets"]]
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
    parser.add_argument("--n", type=int, default=600, help="Colour/pattern pairs sampled (default 600).")
    parser.add_argument("--details", type=int, default=120, help="Pairs per detail attribute (default 120).")
    parser.add_argument("--store", type=Path, default=None, help="Store to read (default: the full H&M bench store).")
    parser.add_argument("--tune", action="store_true", help="Tune re-ranking weights on non-test pairs.")
    args = parser.parse_args(argv or [])
    import torch

    from atelier.tools.settings import get_settings

    torch.set_num_threads(1)  # one query at a time: more threads only fight over 2 shared cores
    encoder = load_encoder()
    index = store_index(args.store)
    test_codes, _ = test_split(get_settings().datasets)
    if args.tune:
        codes = {p.attributes.get("product_code") for p in index.products} - test_codes
        tune(ComposedSearch(index, encoder), build_pairs(index.products, codes, min(args.n, 600), seed=1))
        return
    pairs = build_pairs(index.products, test_codes, args.n) + build_detail_pairs(index.products, test_codes,
                                                                                 args.details)
    counts = ", ".join(f"{c}: {sum(p['kind'] == c for p in pairs)}" for c in CHANGES)
    print(f"encoder {encoder.name}; {len(pairs)} test-split pairs ({counts}) over {len(index.ids)} H&M articles",
          flush=True)
    started = time.perf_counter()
    refs = sorted({p["ref"] for p in pairs})
    stored = {pid: index.matrix["image"][index.position[pid]] for pid in refs}
    before = ComposedSearch(index, encoder, recognise=False, families=False, projection=None)
    now = ComposedSearch(index, encoder)
    engines = {"before (no recognition, families, shape)": lambda hidden: before,
               "composed (tools.composed)": lambda hidden: ComposedSearch(Hidden(index, hidden), encoder,
                                                                          projection=now.projection or None)}
    results: dict[tuple[str, str], list[int | None]] = {}
    seen: dict = {}
    for kind in KINDS:
        images = photos(index, refs, kind) if kind in ("clean photo", "degraded photo") else (
            photos(index, refs, "clean photo") if kind == "out-of-catalog photo" else {})
        vectors = dict(stored)
        if kind in ("clean photo", "degraded photo"):
            from atelier.tools.recognition import strip_border

            embedded = encoder.embed_images([strip_border(images[pid]) for pid in refs])
            vectors = dict(zip(refs, embedded))
        for name, ranks in baseline_ranks(index, encoder, pairs, vectors).items():
            results[(kind, name)] = ranks
        for name, make in engines.items():
            results[(kind, name)] = composed_ranks(make, pairs, kind, images, vectors,
                                                   seen if name.startswith("composed") else None)
        print(f"{kind}: done after {time.perf_counter() - started:.0f}s", flush=True)
    report(pairs, results, seen)


def report(pairs: list[dict], results: dict, seen: dict) -> None:
    changes = [c for c in CHANGES if any(p["kind"] == c for p in pairs)]
    rows = []
    for (kind, name), ranks in results.items():
        row: list[object] = [kind, name]
        for change in ["all", *changes]:
            chosen = [r for r, p in zip(ranks, pairs) if change in ("all", p["kind"])]
            row += [recall(chosen, 1), recall(chosen, 10)]
        rows.append(row)
    header = ["reference", "method"] + [f"{c} R@{k}" for c in ["all", *changes] for k in (1, 10)]
    print_table("Composed retrieval on H&M test-split pairs, whole catalog (R@1, R@10 per change type)", header, rows)
    for kind in KINDS[1:]:
        read = [v for (k, _), v in seen.items() if k == kind]
        refs = [r for (k, r) in seen if k == kind]
        right = sum(v == r for v, r in zip(read, refs))
        print(f"{kind}: recognised as itself {right}/{len(read)}, as another item "
              f"{sum(v is not None and v != r for v, r in zip(read, refs))}/{len(read)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
