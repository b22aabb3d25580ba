"""Scoring a parser on a labelled utterance corpus (``tests/data/utterances.yaml``, ``tests/data/wild_utterances.yaml``):
per-field accuracy, and per-phenomenon row accuracy (a row counts when every field is right).

Any object with ``parse(text, context) -> TurnIntent`` can be scored, so the rules and the optional LLM parser
(``assistant/parser/llm.py``) are measured on the same rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atelier.assistant.parser.pipeline import Parser
from atelier.memory.intent import ParseContext

FIELDS: dict[str, Any] = {"intent": None, "must": {}, "avoid": {}, "allow": {}, "price_min": None, "price_max": None,
                          "relative": [], "references": [], "similar": [], "like": [], "dislike": []}


@dataclass
class Corpus:
    contexts: dict[str, ParseContext]
    rows: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path, section: str = "utterances", split: str | None = None) -> Corpus:
        """Rows of ``section``; ``split`` "dev" / "held_out" keeps every third row (3, 6, 9, ...) apart as held-out."""
        data = yaml.safe_load(Path(path).read_text())
        rows = data[section]
        if split is not None:
            rows = [r for i, r in enumerate(rows) if (i % 3 == 2) == (split == "held_out")]
        return cls({name: ParseContext(**spec) for name, spec in data["contexts"].items()}, rows)


@dataclass
class Score:
    fields: dict[str, float]
    phenomena: dict[str, tuple[int, int]]  # tag -> (rows right, rows)
    rows_right: int
    rows: int
    misses: list[str] = field(default_factory=list)

    @property
    def mean_field(self) -> float:
        return sum(self.fields.values()) / len(self.fields)

    @property
    def min_field(self) -> float:
        return min(self.fields.values())


def field_matches(name: str, expected: Any, got: Any) -> bool:
    if name in ("must", "avoid", "allow"):
        return {k: sorted(v) for k, v in (expected or {}).items()} == {k: sorted(v) for k, v in (got or {}).items()}
    if name == "relative":
        return sorted(expected) == sorted(got)
    if name in ("price_min", "price_max") and expected is not None and got is not None:
        return abs(float(expected) - float(got)) < 1e-6
    return expected == got


def score(parser: Parser, corpus: Corpus) -> Score:
    hits: Counter[str] = Counter()
    tags: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    right = 0
    for row in corpus.rows:
        parsed = parser.parse(row["text"], corpus.contexts[row["context"]])
        ok = True
        for name, default in FIELDS.items():
            expected, got = row.get(name, default), getattr(parsed, name)
            if field_matches(name, expected, got):
                hits[name] += 1
            else:
                ok = False
                misses.append(f"{row['text']!r} {name}: want {expected} got {got}")
        right += ok
        for tag in row.get("tags", []):
            tags[tag][0] += ok
            tags[tag][1] += 1
    n = max(1, len(corpus.rows))
    return Score({f: hits[f] / n for f in FIELDS}, {t: (a, b) for t, (a, b) in sorted(tags.items())}, right,
                 len(corpus.rows), misses)
