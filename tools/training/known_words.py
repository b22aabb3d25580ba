"""Build ``prompts/known_words.txt``: real words the parser's spelling tolerance must never "correct".

Words come from the catalogs' own text (H&M product names and descriptions, Fashion Product Images titles),
training items only: the test split's titles are where false corrections are measured
(``benchmarks/bench_wild.py``), so they stay out. ``python -m atelier.tools.training.known_words``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from atelier.tools.settings import PROMPTS_DIR, get_settings

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
MIN_COUNT = 2


def training_texts(datasets: Path) -> list[str]:
    """Product names and descriptions of every catalog item outside the test split."""
    splits = datasets / "splits"
    hm_test = set((splits / "hm_test_product_codes.txt").read_text().split())
    fpi_test = set((splits / "fpi_test_ids.txt").read_text().split())
    texts: list[str] = []
    with open(datasets / "hm" / "articles.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["product_code"] in hm_test:
                continue
            texts += [row["prod_name"], row.get("detail_desc") or "", row["product_type_name"]]
    with open(datasets / "fashion-product-images-small" / "styles.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["id"] not in fpi_test:
                texts.append(row.get("productDisplayName") or "")
    return texts


def known_words(texts: list[str], min_count: int = MIN_COUNT) -> list[str]:
    counts = Counter(w for t in texts for w in WORD.findall(t.lower()))
    return sorted(w for w, n in counts.items() if n >= min_count and len(w) >= 3)


def main() -> None:
    words = known_words(training_texts(get_settings().datasets))
    header = ("# Real words the parser's spelling tolerance never corrects (assistant/parser/spelling.py), from\n"
              "# training items' names and descriptions; rebuilt by python -m atelier.tools.training.known_words\n")
    (PROMPTS_DIR / "known_words.txt").write_text(header + "\n".join(words) + "\n")
    print(f"{len(words)} known words")


if __name__ == "__main__":
    main()
