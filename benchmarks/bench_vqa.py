"""Product question answering on the H&M test split: questions generated from each item's fields and description
(what colour, what pattern, what is it made of, is it for men or women, how much, what kind of item), answered
with the listing and with the photo only; plus unanswerable questions (material when the description names
none, machine washing when care is not stated, sizes, which no listing gives) whose right answer is "not stated".

Accuracy per question type and mode, abstention rate, and the hallucination rate — the share of unanswerable
questions answered anyway (target 0). Each question type rotates through several phrasings, so the question
classifier is exercised too. ``python -m benchmarks.bench_vqa [--n 400]``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import numpy as np
from PIL import Image

from benchmarks.common import print_table

PHRASINGS = {
    "colour": ["What colour is it?", "what color is this?", "Which colour is this item?"],
    "pattern": ["What pattern does it have?", "is it plain or patterned?", "what's the print like?"],
    "material": ["What is it made of?", "what fabric is this?", "what material is it?"],
    "gender": ["Is it for men or women?", "which department is this from?", "who is this for?"],
    "price": ["How much is it?", "what does it cost?", "what's the price?"],
    "category": ["What kind of item is this?", "what is it?", "what type of garment is this?"],
    "care": ["Is it machine washable?", "how do I wash it?", "can it go in the washing machine?"],
    "size": ["What sizes does it come in?", "is it available in XL?"],
}
# Materials a generated question expects (independent of the answerer's own word list).
MATERIALS = ("cotton", "polyester", "wool", "linen", "viscose", "lyocell", "silk", "satin", "leather", "suede",
             "denim", "jersey", "fleece", "velour", "velvet", "corduroy", "cashmere", "mohair", "nylon", "lace",
             "mesh", "chiffon", "twill", "canvas", "modal", "knit", "woven fabric", "sweatshirt fabric", "crêpe",
             "plastic", "faux fur", "rubber", "straw", "sequins", "tulle", "elastane", "polyamide", "acrylic",
             "metal", "glass", "functional fabric", "softshell", "shearling", "terry")
CARE = re.compile(r"machine[- ]wash|hand[- ]wash|washable|dry[- ]clean|tumble[- ]dr|can be washed|wash at", re.I)
GENDER_WORDS = {"women": ("women", "ladieswear", "divided"), "men": ("men", "menswear"),
                "kids": ("kids", "baby/children", "children")}


def make_questions(frame, n_phrasing: int = 0) -> list[dict]:
    """Questions for each item, with the expected answer (None = unanswerable) and what the photo should give."""
    questions = []
    for k, (pid, row) in enumerate(frame.iterrows()):
        turn = k + n_phrasing
        desc = str(row.get("detail_desc", "") or "")
        listing = f"{row.get('prod_name', '')}. {desc}"
        found = [m for m in MATERIALS if re.search(rf"(?<!\w){m}(?![\w-])", listing, re.I)]

        def add(kind: str, listing, photo=None):
            options = PHRASINGS[kind]
            questions.append({"id": pid, "kind": kind, "question": options[turn % len(options)],
                              "listing": listing, "photo": photo})

        add("colour", [row["colour_group_name"].lower()], row["colour"])
        add("pattern", [row["graphical_appearance_name"].lower()], row["pattern"])
        add("material", found or None)
        add("gender", list(GENDER_WORDS.get(row["gender"], (row["gender"],))), row["gender"])
        add("price", [f"{float(row['price']):.2f}"] if row.get("price") else None)
        add("category", [row["product_type_name"].lower()], row["category"])
        add("care", None if not CARE.search(desc) else ["wash"])
        add("size", None)
    return questions


def judge(answer, expected) -> str:
    """Answerable: 'correct', 'wrong' or 'abstained'. Unanswerable (``expected`` None): 'declined' or 'hallucinated'."""
    if expected is None:
        return "declined" if not answer.answerable else "hallucinated"
    if not answer.answerable:
        return "abstained"
    text = answer.answer.lower()
    return "correct" if any(e in text for e in expected) else "wrong"


def main(argv: list[str] | None = None) -> None:
    from atelier.tools.attributes import AttributeExtractor
    from atelier.tools.catalogs import CatalogOptions, Reject, read_catalog
    from atelier.tools.settings import get_settings
    from atelier.tools.training.probes import catalog_items
    from atelier.tools.vqa import answer_from_listing, answer_from_photo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="Test-split items (default 400).")
    args = parser.parse_args(argv or [])
    items = catalog_items("hm", split="test")
    chosen = sorted(np.random.default_rng(0).choice(len(items.ids), min(args.n, len(items.ids)), replace=False))
    frame = items.frame.iloc[chosen]
    paths = [items.paths[i] for i in chosen]
    products = {p.id: p for p in read_catalog(get_settings().datasets / "hm", "hm",
                                              CatalogOptions(only_ids=frozenset(frame.index)))
                if not isinstance(p, Reject)}
    questions = make_questions(frame)
    extractor = AttributeExtractor()
    started = time.perf_counter()
    predictions = {}
    for lo in range(0, len(paths), 64):
        batch = [Image.open(p).convert("RGB") for p in paths[lo:lo + 64]]
        for pid, pred in zip(frame.index[lo:lo + 64], extractor.predict_images(batch)):
            predictions[pid] = pred
    print(f"{len(questions)} questions on {len(frame)} H&M test-split items; encoder {extractor.encoder.name}, "
          f"attribute heads {'trained' if extractor.trained else 'zero-shot fallback'}")
    outcomes: dict[tuple[str, str], list[str]] = defaultdict(list)
    blank = Image.new("RGB", (8, 8), "white")
    for q in questions:
        listing = answer_from_listing(products[q["id"]], q["question"])
        outcomes[("listing", q["kind"])].append(judge(listing, q["listing"]))
        photo = answer_from_photo(blank, q["question"], predictions=predictions[q["id"]])
        expected = None if q["photo"] in (None, "unknown") else [q["photo"]]
        if expected and q["kind"] == "gender":
            expected = list(GENDER_WORDS.get(q["photo"], (q["photo"],)))
        outcomes[("photo", q["kind"])].append(judge(photo, expected))
    seconds = time.perf_counter() - started
    rows = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for mode in ("listing", "photo"):
        for kind in PHRASINGS:
            got = outcomes[(mode, kind)]
            answerable = sum(g in ("correct", "wrong", "abstained") for g in got)
            unanswerable = sum(g in ("declined", "hallucinated") for g in got)
            totals[mode][0] += unanswerable
            totals[mode][1] += got.count("hallucinated")
            rows.append([mode, kind, answerable, got.count("correct") / answerable if answerable else "-",
                         got.count("wrong"), got.count("abstained"), unanswerable, got.count("hallucinated")])
    print_table("Answers per question type (accuracy over the answerable questions)",
                ["mode", "type", "answerable", "accuracy", "wrong", "abstained", "unanswerable", "hallucinated"], rows)
    for mode, (unanswerable, hallucinated) in totals.items():
        print(f"{mode}: hallucination rate {hallucinated / max(unanswerable, 1):.3f} "
              f"({hallucinated} of {unanswerable} unanswerable questions answered anyway)")
    print(f"{seconds / max(len(questions), 1) * 1000:.1f} ms per question (both modes, photo embedded once per item)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
