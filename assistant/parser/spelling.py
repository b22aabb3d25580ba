"""Spelling tolerance: "a blak dres" reads as "a black dress", "somthing cheapr" as cheaper.

A word is corrected only when it is unknown (not a vocabulary word, not a real word of the catalogs' own text:
``prompts/known_words.txt``), at least four letters long, starts with the same letter as the correction, and lies
within one edit (two from eight letters on) of one vocabulary word (the longer on a tie: dropped letters are the
commoner typo, "cheapr" -> "cheaper" not "cheap") under the optimal-string-alignment
distance (a swap of two neighbouring letters is one edit: "skrit" -> "skirt"). The guard against "correcting" real
words into facet values is measured on held-out product titles and the original corpus (``bench_wild``).
Shorthand ("pls", "blk", "4 a") is a plain lookup from ``prompts/vocabulary.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from atelier.tools.settings import PROMPTS_DIR

TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*")


class SpellingCorrector:
    """Maps unknown words onto the one vocabulary word they are a typo of (rapidfuzz, OSA distance)."""

    def __init__(self, targets: Iterable[str], known: Iterable[str], shorthand: dict[str, str] | None = None) -> None:
        self.targets = sorted({t for t in targets if t.isalpha() and len(t) >= 3})
        self.known = set(known) | set(self.targets)
        self.shorthand = {k.lower(): v for k, v in (shorthand or {}).items()}
        self._shorthand = (re.compile(r"(?<![\w'])(?:" + "|".join(
            re.escape(k) for k in sorted(self.shorthand, key=len, reverse=True)) + r")(?![\w'])")
            if self.shorthand else None)
        self._by_initial: dict[str, list[str]] = {}
        for word in self.targets:
            self._by_initial.setdefault(word[0], []).append(word)
        self._cache: dict[str, str | None] = {}

    def correct_word(self, word: str) -> str | None:
        """The vocabulary word ``word`` is a typo of, or None."""
        if len(word) < 4 or word in self.known or not word.isalpha():
            return None
        if word not in self._cache:
            self._cache[word] = self._nearest(word)
        return self._cache[word]

    def _nearest(self, word: str) -> str | None:
        limit = 2 if len(word) >= 8 else 1
        choices = self._by_initial.get(word[0], [])
        found = process.extract(word, choices, scorer=OSA.distance, score_cutoff=limit, limit=4)
        if not found:
            return None
        best = min(score for _, score, _ in found)
        winners = sorted({choice for choice, score, _ in found if score == best}, key=len)
        if len(winners) > 1 and len(winners[-1]) == len(winners[-2]):
            return None
        return winners[-1]

    def correct(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """``text`` with shorthand expanded and typos corrected, and the (word, correction) pairs made."""
        if self._shorthand is not None:
            text = self._shorthand.sub(lambda m: self.shorthand[m.group(0)], text)
        changes: list[tuple[str, str]] = []

        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            fixed = self.correct_word(word)
            if fixed is None:
                return word
            changes.append((word, fixed))
            return fixed

        return TOKEN.sub(fix, text), changes


@lru_cache(maxsize=2)
def known_words(english_min_count: int = 1000) -> frozenset[str]:
    """Real words: the catalogs' own text (``prompts/known_words.txt``) and common English (pyspellchecker's
    frequency list, words seen at least ``english_min_count`` times: "sick" is no typo of "sock")."""
    lines = (PROMPTS_DIR / "known_words.txt").read_text().splitlines()
    words = {w.strip() for w in lines if w.strip() and not w.startswith("#")}
    try:
        from spellchecker import SpellChecker

        frequency = SpellChecker(language="en").word_frequency.dictionary
        words |= {w for w, n in frequency.items() if n >= english_min_count}
    except ImportError:  # the catalog words alone still guard the facet values
        pass
    return frozenset(words)
