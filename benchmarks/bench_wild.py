"""How well the turn parser reads shoppers as they really write (issue 15): the wild corpus
(``tests/data/wild_utterances.yaml``, dev and held-out rows) and the original corpus (``tests/data/utterances.yaml``,
180 tuned + 40 held-out), per field and per phenomenon, plus the parser's time per message.

``python -m benchmarks.bench_wild [--parser rules|llm] [--split dev|held_out|all] [--misses]``. ``--parser llm``
scores the LLM parser on the same rows against a real endpoint, with the rule parser as its fallback:
``ATELIER_LLM=openai ATELIER_LLM_BASE_URL=... ATELIER_LLM_MODEL=... ATELIER_LLM_API_KEY=... python -m
benchmarks.bench_wild --parser llm`` (it reports how many answers fell back).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from atelier.assistant.parser import TurnParser
from atelier.assistant.parser.corpus import Corpus, Score, score
from atelier.assistant.parser.pipeline import Parser
from atelier.tools.settings import get_settings
from benchmarks.common import percentile, print_table

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
WILD = DATA / "wild_utterances.yaml"
ORIGINAL = DATA / "utterances.yaml"


def build_parser(kind: str) -> Parser:
    rules = TurnParser(use_embeddings=False)
    if kind == "llm":
        from atelier.assistant.parser.llm import LLMTurnParser

        return LLMTurnParser(fallback=rules)
    return rules


def corpora(split: str) -> dict[str, Corpus]:
    sets: dict[str, Corpus] = {}
    for name in (["dev", "held_out"] if split == "all" else [split]):
        sets[f"wild {name}"] = Corpus.load(WILD, split=name)
    sets["original 180"] = Corpus.load(ORIGINAL)
    sets["original held-out 40"] = Corpus.load(ORIGINAL, section="held_out")
    return sets


def report(scores: dict[str, Score], show_misses: bool) -> None:
    names = list(scores)
    fields = list(next(iter(scores.values())).fields)
    print_table("per-field accuracy", ["field", *names],
                [[f, *[scores[n].fields[f] for n in names]] for f in fields]
                + [["mean", *[scores[n].mean_field for n in names]], ["min", *[scores[n].min_field for n in names]],
                   ["rows all right", *[f"{scores[n].rows_right}/{scores[n].rows}" for n in names]]])
    wild = [n for n in names if n.startswith("wild")]
    tags = sorted({t for n in wild for t in scores[n].phenomena})
    print_table("per-phenomenon row accuracy (every field right)", ["phenomenon", *wild],
                [[t, *[_ratio(scores[n].phenomena.get(t)) for n in wild]] for t in tags])
    if show_misses:
        for n in names:
            if n.endswith("held_out") or "held-out" in n:
                continue
            print(f"\n## misses: {n}")
            print("\n".join(scores[n].misses))


def _ratio(pair: tuple[int, int] | None) -> str:
    return "-" if not pair else f"{pair[0] / pair[1]:.2f} ({pair[0]}/{pair[1]})"


def false_corrections(parser: TurnParser) -> None:
    """The spelling guard: words the corrector changes in text that has no typos - H&M test-split product names and
    descriptions (never used to build the known-word list) and the original corpus."""
    import csv

    from atelier.tools.settings import get_settings
    from benchmarks.common import hm_test_product_codes

    codes = hm_test_product_codes()
    titles: list[str] = []
    with open(get_settings().datasets / "hm" / "articles.csv", newline="") as f:
        titles = [f"{r['prod_name']} {r['detail_desc'] or ''}" for r in csv.DictReader(f) if r["product_code"] in codes]
    originals = [r["text"] for c in (Corpus.load(ORIGINAL), Corpus.load(ORIGINAL, section="held_out")) for r in c.rows]
    rows = []
    for name, texts in (("H&M test-split names + descriptions", titles), ("original corpus (220)", originals)):
        words = sum(len(t.split()) for t in texts)
        changes = [c for t in texts for c in parser.speller.correct(t.lower())[1]]
        examples = ", ".join(sorted({f"{a}->{b}" for a, b in changes})[:12])
        rows.append([name, words, len(changes), len(changes) / max(1, words), examples or "-"])
    print_table("false corrections (text without typos)", ["text", "words", "corrected", "rate", "examples"], rows)


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--parser", choices=["rules", "llm"], default="rules")
    args.add_argument("--split", choices=["dev", "held_out", "all"], default="all")
    args.add_argument("--misses", action="store_true", help="list misses (never for held-out rows)")
    opts = args.parse_args(argv)
    if opts.parser == "llm" and get_settings().llm != "openai":
        print("--parser llm needs ATELIER_LLM=openai and ATELIER_LLM_BASE_URL / _MODEL / _API_KEY of an endpoint")
        return
    parser = build_parser(opts.parser)
    sets = corpora(opts.split)
    scores = {name: score(parser, corpus) for name, corpus in sets.items()}
    report(scores, opts.misses)
    if opts.parser == "llm":
        total = sum(len(c.rows) for c in sets.values())
        print(f"\nLLM answers that fell back to the rules: {parser.failures}/{total}")
    if opts.parser == "rules":
        rows = [r for c in sets.values() for r in c.rows]
        contexts = {**next(iter(sets.values())).contexts}
        times = []
        for row in rows:
            started = time.perf_counter()
            parser.parse(row["text"], contexts.get(row["context"]))
            times.append((time.perf_counter() - started) * 1000)
        print(f"\nparse time per message: p50 {percentile(times, 50):.2f} ms, p95 {percentile(times, 95):.2f} ms "
              f"({len(times)} messages)")
        false_corrections(parser)


if __name__ == "__main__":
    main()
