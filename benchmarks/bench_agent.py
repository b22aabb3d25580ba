"""Multi-turn retrieval with simulated shoppers (FashionIQ-style dialogues) on the H&M test split.

Each shopper has a hidden target article from ``splits/hm_test_product_codes.txt``. Turn 1 is a vague request
("I'm looking for a dress"); every later turn is feedback written from the differences between the target and
the results just shown — category, department, colour, pattern, price direction, a detail from the target's
description, and, when a shown item is close, "more like the Nth one" (relative words then compare with that
item) — at most two new points per turn, up to 5 turns. The same shopper policy talks to three systems in one run:

* **cascaded memory** — the real ``Assistant`` (memory constraints + decayed text/anchor vector cascade);
* **last message only** — hybrid search on the latest message alone;
* **concatenate all** — hybrid search on all messages so far joined together.

All three show the same kind of list (at most two colour variants of a product in the top 10), so the
difference is the memory alone.

Reported: success@10 after each turn (target in the top 10 at or before that turn), mean turns to success,
ratios vs both baselines, and per-turn latency of the assistant without LLM generation (p50/p95, time to the
first event and to the first products).

Every shopper plays twice, in two voices (``--voices``): **plain** (the parser's own words: "in blue", "cheaper") and
**paraphrased** (``benchmarks/paraphrase.py``: seeded templates per feedback kind with contractions, texting,
British/American words, the person it is for and typos), against the same three systems; a last table puts their
success@10 side by side.

``python -m benchmarks.bench_agent [--n 300] [--turns 5] [--store DIR] [--ingest] [--voices plain,paraphrased]``. The store must hold the
whole H&M catalog: ``--store``, else ``ATELIER_STORE`` / ``.atelier/store``, else the benchmark store other
benchmarks build (``.atelier/bench/store-compact``); ``--ingest`` builds that one.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atelier.tools.schema import UNKNOWN, Product, SearchResult
from atelier.tools.settings import Settings, get_settings, override_settings
from benchmarks.common import BENCH_HOME, hm_test_product_codes, percentile, print_table
from benchmarks.paraphrase import Paraphraser

ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
           9: "ninth", 10: "tenth"}
PATTERN_WORDS = {"solid": "plain", "striped": "striped", "print": "with a print", "check": "checked",
                 "dotted": "dotted", "denim": "in denim", "melange": "melange", "lace": "in lace",
                 "embroidered": "embroidered", "metallic": "glittery", "textured": "textured",
                 "colour-block": "colour block"}
GENDER_WORDS = {"women": "for women", "men": "for men", "kids": "for kids"}
DETAILS = ["long sleeves", "short sleeves", "sleeveless", "hood", "v-neck", "collar", "buttons", "zip", "pockets",
           "ribbed", "lace", "jersey", "cotton", "linen", "satin", "chiffon", "wool", "wide legs", "slim fit",
           "high waist", "elasticated waist", "ankle-length", "calf-length", "cropped", "oversized", "drawstring",
           "frill", "wrap", "tie belt", "stretch", "padded", "knitted", "print"]


@dataclass
class Shopper:
    """The simulated shopper: knows the target, remembers what it has already said."""

    target: Product
    said: set[str] = field(default_factory=set)
    voice: Paraphraser | None = None

    def opening(self) -> str:
        noun = with_article(category_noun(self.target))
        return self.voice.opening(noun) if self.voice else f"I'm looking for {noun}"

    def feedback(self, shown: list[SearchResult]) -> str:
        """Up to two new differences between the target and the top result, plus a pointer to a close item;
        relative words (cheaper, longer, darker, more formal) compare with the item pointed at, as a person
        saying "more like the third one, cheaper" means cheaper than the third one."""
        t = self.target
        close = closest(shown, t)
        top = shown[0] if shown else None
        pointed = shown[close - 1] if close is not None and close > 1 else top
        points: list[tuple[str, str, str]] = []

        def differs(name: str) -> bool:
            return top is None or getattr(top, name) != getattr(t, name)

        if t.category != UNKNOWN and differs("category"):
            noun = with_article(category_noun(t))
            points.append(("category", f"I meant {noun}", noun))
        if t.gender in GENDER_WORDS and differs("gender"):
            points.append(("gender", GENDER_WORDS[t.gender], t.gender))
        if t.colour not in (UNKNOWN, "multi") and differs("colour"):
            points.append(("colour", f"in {t.colour}", t.colour))
        if t.pattern in PATTERN_WORDS and differs("pattern"):
            points.append(("pattern", PATTERN_WORDS[t.pattern], t.pattern))
        if pointed is not None and pointed.price and t.price:
            if t.price < 0.8 * pointed.price:
                points.append(("price-down", "cheaper", ""))
            elif t.price > 1.25 * pointed.price:
                points.append(("price-up", "more expensive", ""))
        if pointed is not None and pointed.product is not None:
            for name, (score, more, less, gap) in RELATIVE_FEEDBACK.items():
                delta = score(t) - score(pointed.product)
                if abs(delta) >= gap:
                    word = more if delta > 0 else less
                    points.append((f"{name}:{word}", word, word))
        shown_text = (top.product.description.lower() if top and top.product else "")
        for detail in DETAILS:
            if re.search(rf"\b{re.escape(detail)}\b", t.description.lower()) and detail not in shown_text:
                phrase = f"in {detail}" if detail in MATERIALS else f"with {detail}"
                points.append((f"detail:{detail}", phrase, detail))
        fresh = [point for point in points if point[0] not in self.said or point[0].startswith("price")]
        chosen = fresh[:2]
        for key, _, _ in chosen:
            self.said.add(key)
        if self.voice:
            return self.voice.feedback([(point_kind(key, value), text, value) for key, text, value in chosen],
                                       close if close is not None and close > 1 else None)
        parts = [text for _, text, _ in chosen]
        if close is not None and close > 1:
            parts.insert(0, f"more like the {ORDINAL[close]} one")
        return ", ".join(parts) if parts else "show me more"


MATERIALS = {"jersey", "cotton", "linen", "satin", "chiffon", "wool", "lace"}


def point_kind(key: str, value: str) -> str:
    """The paraphraser's template kind for a feedback point ("length:longer" -> "longer", "detail:wool" ->
    "material")."""
    if key.startswith("detail:"):
        return "material" if value in MATERIALS else "detail"
    return key.split(":", 1)[1] if ":" in key else key
PLURAL_NOUNS = {"trousers", "jeans", "shorts", "leggings", "sneakers", "boots", "heels", "sandals", "flats", "earrings",
                "pyjamas", "socks", "tights", "sunglasses", "gloves", "briefs", "shoes"}


def _relative_feedback() -> dict[str, tuple[Callable[[Product], float], str, str, float]]:
    """FashionIQ-style relative captions: (score, word when the target scores higher, word when lower, gap)."""
    from atelier.memory.relative import formality, length, lightness

    return {"length": (length, "longer", "shorter", 2.0),
            "lightness": (lightness, "lighter", "darker", 0.3),
            "formality": (formality, "more formal", "more casual", 0.5)}


RELATIVE_FEEDBACK = _relative_feedback()


def category_noun(p: Product) -> str:
    if p.category != UNKNOWN:
        return "hair accessory" if p.category == "hair-accessory" else p.category
    return p.group if p.group not in ("other", UNKNOWN) else "piece of clothing"


def with_article(noun: str) -> str:
    if noun in PLURAL_NOUNS or noun == "underwear":
        return f"some {noun}"
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def closest(shown: list[SearchResult], target: Product) -> int | None:
    """Rank of the shown item sharing the most facets with the target (category and colour required)."""
    best, best_score = None, 1
    for rank, r in enumerate(shown[:10], start=1):
        if r.category != target.category or r.colour != target.colour:
            continue
        score = sum(getattr(r, f) == getattr(target, f) for f in ("category", "colour", "pattern", "gender"))
        if score > best_score:
            best, best_score = rank, score
    return best


# ---- the three systems ----------------------------------------------------------------------------------
class System:
    name = ""

    def start(self) -> None: ...

    def turn(self, message: str) -> list[SearchResult]:
        raise NotImplementedError


class Cascaded(System):
    name = "cascaded memory"

    def __init__(self, assistant) -> None:
        self.assistant = assistant
        self.session = ""
        self.latency: list[float] = []
        self.first_event: list[float] = []
        self.first_products: list[float] = []

    def start(self) -> None:
        self.session = self.assistant.new_session()

    def turn(self, message: str) -> list[SearchResult]:
        from atelier.assistant.events import ProductsEvent

        started = time.perf_counter()
        results: list[SearchResult] = []
        first = products_at = None
        for event in self.assistant.turn(self.session, message):
            if first is None:
                first = time.perf_counter() - started
            if isinstance(event, ProductsEvent):
                if products_at is None:
                    products_at = time.perf_counter() - started
                results += event.results
        self.latency.append(time.perf_counter() - started)
        self.first_event.append(first or 0.0)
        if products_at is not None:
            self.first_products.append(products_at)
        return results


class LastMessage(System):
    name = "last message only"

    def __init__(self, engine) -> None:
        self.engine = engine
        self.latency: list[float] = []

    def turn(self, message: str) -> list[SearchResult]:
        from atelier.assistant.agent_tools import diversify

        started = time.perf_counter()
        results = diversify(self.engine.search(message, k=30), 10)
        self.latency.append(time.perf_counter() - started)
        return results


class Concatenated(LastMessage):
    name = "concatenate all"

    def start(self) -> None:
        self.messages: list[str] = []

    def turn(self, message: str) -> list[SearchResult]:
        self.messages.append(message)
        return super().turn(". ".join(self.messages))


def dialogue(system: System, target: Product, turns: int,
             voice: Paraphraser | None = None) -> tuple[int | None, list[str]]:
    """Play one shopper against one system; returns the turn of success (or None) and the messages."""
    shopper = Shopper(target, voice=voice)
    system.start()
    message = shopper.opening()
    messages = []
    for turn in range(1, turns + 1):
        messages.append(message)
        shown = system.turn(message)
        if target.id in {r.id for r in shown[:10]}:
            return turn, messages
        message = shopper.feedback(shown)
    return None, messages


# ---- setup ----------------------------------------------------------------------------------------------
def _count(settings: Settings) -> int:
    try:
        from atelier.tools.store import open_store

        return open_store(settings).count()
    except Exception:  # noqa: BLE001 - any unreadable store counts as missing
        return 0


def choose_store(store: Path | None, ingest: bool) -> Settings | None:
    base = get_settings()
    candidates = [store] if store else [base.store_path, BENCH_HOME / f"store-{base.encoder.replace(':', '_')}"]
    for path in candidates:
        if path and Path(path).exists():
            settings = override_settings(store=path, llm="none")
            n = _count(settings)
            if n >= 11000 or (store and n):
                print(f"store: {path} ({n} products)" + ("" if n >= 11000 else
                      " — not the whole catalog: targets are the test-split articles it holds"))
                return settings
            print(f"store {path} holds {n} products, not the whole H&M catalog (11,800); skipping it")
    if ingest:
        from benchmarks.common import full_hm_settings

        settings = full_hm_settings(base.encoder)
        return override_settings(**(settings.model_dump() | {"llm": "none"}))
    print("No store with the full H&M catalog found. Build one with `atelier ingest ../shared/datasets/hm` "
          "(then ATELIER_STORE=...), or rerun with --ingest (≈5 min on 2 cores), or pass --store DIR.")
    return None


def targets(engine, n: int, seed: int, split: str = "test") -> list[Product]:
    """One random article from each of ``n`` random products present in the store: test-split products, or
    (``split="dev"``, for tuning the cascade weights) products outside the test split."""
    import csv

    codes = hm_test_product_codes()
    by_code: dict[str, list[str]] = {}
    with (get_settings().datasets / "hm" / "articles.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["product_code"] in codes) == (split == "test"):
                by_code.setdefault(row["product_code"], []).append(row["article_id"])
    present: dict[str, list[Product]] = {}
    for code, ids in sorted(by_code.items()):
        found = engine.store.get(ids)
        if found:
            present[code] = found
    rng = random.Random(seed)
    chosen_codes = rng.sample(sorted(present), min(n, len(present)))
    return [rng.choice(present[code]) for code in chosen_codes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of target products (default 300)")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--ingest", action="store_true", help="build the full-catalog benchmark store if missing")
    parser.add_argument("--split", choices=("test", "dev"), default="test",
                        help="targets from the test split (report) or outside it (tuning)")
    parser.add_argument("--cascade-only", action="store_true", help="skip the baselines (weight tuning)")
    parser.add_argument("--weights", default="", help="cascade weight overrides, e.g. details=0.4,reference=0.8")
    parser.add_argument("--voices", default="plain,paraphrased",
                        help="shopper voices: plain (the parser's words) and/or paraphrased (benchmarks/paraphrase.py)")
    args = parser.parse_args(argv or [])

    settings = choose_store(args.store, args.ingest)
    if settings is None:
        return
    home = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    settings = override_settings(**(settings.model_dump() | {"home": home, "db": home / "bench.db"}))
    from atelier.assistant.turn import Assistant
    from atelier.memory import CascadeWeights

    overrides = dict(kv.split("=") for kv in args.weights.split(",") if kv)
    weights = CascadeWeights(**{k: float(v) for k, v in overrides.items()})
    assistant = Assistant(settings, weights=weights, tool_model=None)
    engine = assistant.engine
    chosen = targets(engine, args.n, args.seed, args.split)
    print(f"{len(chosen)} targets from the {args.split} split, up to {args.turns} turns each; cascade {weights}")
    list(assistant.turn(None, "warm-up: a black dress"))
    engine.search("warm-up", k=10)

    cascaded = Cascaded(assistant)
    systems: list[System] = [cascaded] if args.cascade_only else [cascaded, LastMessage(engine), Concatenated(engine)]
    voices = [v for v in args.voices.split(",") if v]
    successes = {voice: {s.name: [] for s in systems} for voice in voices}
    examples: dict[str, list[list[str]]] = {voice: [] for voice in voices}
    started = time.perf_counter()
    for i, target in enumerate(chosen, start=1):
        for voice in voices:
            for system in systems:
                speaker = Paraphraser(seed=args.seed * 100_003 + i) if voice == "paraphrased" else None
                turn, messages = dialogue(system, target, args.turns, speaker)
                successes[voice][system.name].append(turn)
                if system is cascaded and len(examples[voice]) < 3 and len(messages) >= 3:
                    examples[voice].append(messages)
        if i % 25 == 0:
            rates = ", ".join(f"{voice} {name}: {sum(t is not None for t in s) / i:.2f}"
                              for voice in voices for name, s in successes[voice].items())
            print(f"  {i}/{len(chosen)} targets ({time.perf_counter() - started:.0f}s) success@10 so far — {rates}",
                  flush=True)

    for voice in voices:
        print(f"\n# {voice} shopper")
        report(successes[voice], systems, args.turns, len(chosen), latency=voice == voices[-1])
        for messages in examples[voice]:
            print("  example dialogue: " + " → ".join(repr(m) for m in messages))
    if len(voices) > 1:
        compare_voices(successes, voices, systems, args.turns, len(chosen))


def compare_voices(successes: dict[str, dict[str, list[int | None]]], voices: list[str], systems: list[System],
                   turns: int, n: int) -> None:
    """success@10 at the last turn for each voice side by side, against the same baselines (issue 15's target:
    the paraphrased shopper within 0.05 of the plain one)."""
    def at(voice: str, name: str) -> float:
        return sum(s is not None and s <= turns for s in successes[voice][name]) / n

    rows = [[s.name, *[at(v, s.name) for v in voices], at(voices[1], s.name) - at(voices[0], s.name)]
            for s in systems]
    print_table(f"success@10 at turn {turns}: plain vs paraphrased shopper ({n} targets)",
                ["system", *voices, f"{voices[1]} - {voices[0]}"], rows)


def report(successes: dict[str, list[int | None]], systems: list[System], turns: int, n: int,
           latency: bool = True) -> None:
    def at(name: str, t: int) -> float:
        return sum(s is not None and s <= t for s in successes[name]) / n

    header = ["system"] + [f"S@10 t{t}" for t in range(1, turns + 1)] + ["mean turns (found)", "mean turns (fail=6)"]
    rows = []
    for s in systems:
        found = [t for t in successes[s.name] if t is not None]
        censored = [t if t is not None else turns + 1 for t in successes[s.name]]
        rows.append([s.name] + [at(s.name, t) for t in range(1, turns + 1)]
                    + [statistics.mean(found) if found else float("nan"), statistics.mean(censored)])
    print_table(f"success@10 per turn, {n} simulated shoppers", header, rows)
    best = systems[0].name
    ratio_rows = []
    for base in systems[1:]:
        ratio_rows.append([f"{best} / {base.name}"] + [
            (at(best, t) / at(base.name, t)) if at(base.name, t) else float("inf") for t in range(1, turns + 1)])
    print_table("ratios (success@10)", ["ratio"] + [f"t{t}" for t in range(1, turns + 1)], ratio_rows)
    if not latency:
        return
    lat_rows = []
    for s in systems:
        lat = getattr(s, "latency", [])
        row = [s.name, len(lat), percentile(lat, 50) * 1000, percentile(lat, 95) * 1000]
        if isinstance(s, Cascaded):
            row += [percentile(s.first_event, 50) * 1000, percentile(s.first_products, 50) * 1000,
                    percentile(s.first_products, 95) * 1000]
        else:
            row += ["-", "-", "-"]
        lat_rows.append(row)
    print_table("per-turn latency without LLM generation (ms, every voice)",
                ["system", "turns", "p50", "p95", "first event p50", "first products p50", "first products p95"],
                lat_rows)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
