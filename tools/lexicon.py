"""The shopper vocabulary (``prompts/vocabulary.yaml``) and the one way phrase lists become regexes.

One vocabulary for every reader of shopper text: the dialogue parser (``assistant/parser/``), the query parser and
composed search read the same negation and relative-feedback words from here, so a word added to the data is
understood everywhere at once. Grammar (where a phrase may stand) stays in code; words stay in data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import yaml

from atelier.tools.settings import PROMPTS_DIR


def phrases(words: Iterable[str], anchor: str | None = None, strict: bool | None = True) -> re.Pattern[str]:
    """One regex for a phrase list, longest first, on word boundaries.

    ``anchor``: "start" / "end" of the text. ``strict`` boundaries also refuse a hyphen next to the phrase
    ("non-black" is no "black"); loose ones only a letter or digit; ``None``: no boundaries ("<=", "$").
    """
    return re.compile(alternation(words, anchor, strict))


def alternation(words: Iterable[str], anchor: str | None = None, strict: bool | None = True) -> str:
    """The regex source of ``phrases`` (to embed in a larger pattern)."""
    body = "|".join(re.escape(w.strip().lower()) for w in sorted(set(words), key=len, reverse=True))
    left, right = {True: (r"(?<![\w-])", r"(?![\w-])"), False: (r"(?<!\w)", r"(?!\w)"), None: ("", "")}[strict]
    source = rf"{left}(?:{body}){right}"
    if anchor == "start":
        return rf"^\s*{source}"
    if anchor == "end":
        return rf"{source}\s*$"
    return source


@lru_cache(maxsize=4)
def load_prompt_yaml(name: str) -> dict[str, Any]:
    """A YAML file of ``prompts/``, parsed once."""
    return yaml.safe_load((PROMPTS_DIR / name).read_text())


def shopper_vocabulary() -> dict[str, Any]:
    """``prompts/vocabulary.yaml``: what shopper words mean."""
    return load_prompt_yaml("vocabulary.yaml")


def negation_tail(max_words: int = 2) -> str:
    """Regex source for up to ``max_words`` determiners a negation reaches over ("not the black", "no more")."""
    tail = alternation(shopper_vocabulary()["negation_tail"], strict=False)
    return rf"(?:\s+{tail}){{0,{max_words}}}"


@lru_cache(maxsize=1)
def negation_before() -> re.Pattern[str]:
    """A negation ending right before a facet value: "not", "anything but the", "don't want any"."""
    return re.compile(alternation(shopper_vocabulary()["negations"]) + negation_tail() + r"\s*$")


@lru_cache(maxsize=1)
def relative_patterns() -> dict[str, re.Pattern[str]]:
    """Relative feedback cues by name (cheaper, pricier, longer, ...)."""
    return {name: phrases(words) for name, words in shopper_vocabulary()["relative"].items()}


@lru_cache(maxsize=1)
def _scope() -> tuple[re.Pattern[str], re.Pattern[str], int]:
    words = shopper_vocabulary()
    cue = phrases(words["negations"], strict=False)
    breaker = re.compile(r"[,.;!?]|" + alternation(words["scope_breakers"], strict=False))
    return cue, breaker, int(words["negation_reach"])


def in_negation_scope(text: str, start: int, spans: Iterable[tuple[int, int]] = ()) -> bool:
    """Whether a negation a few words back still covers the value at ``start`` ("isn't black", "i dont want
    anything black", "won't wear anything yellow"): nothing between them but up to ``negation_reach`` plain words
    (no punctuation, no scope breaker such as "but" / "just", no other value in ``spans``: or-lists are the
    caller's)."""
    cue, breaker, reach = _scope()
    offset = max(0, start - 60)
    cues = list(cue.finditer(text[offset:start]))
    if not cues:
        return False
    gap_start = offset + cues[-1].end()
    gap = text[gap_start:start]
    if len(gap.split()) > reach or breaker.search(gap):
        return False
    return not any(gap_start <= s and e <= start for s, e in spans)


def negated(text: str, start: int, spans: Iterable[tuple[int, int]] = ()) -> bool:
    """A negation right before ``start`` ("not", "anything but the") or one whose scope reaches it."""
    return bool(negation_before().search(text[max(0, start - 30):start])) or in_negation_scope(text, start, spans)
