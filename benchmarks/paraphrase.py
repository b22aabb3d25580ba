"""A second voice for the simulated shopper of ``bench_agent``: the same feedback points, written the way people
write - lower case, contractions, texting shorthand, British and American words, the person it is for, and now
and then a typo - from seeded templates per feedback kind, so a run is reproducible.

The plain shopper speaks the parser's own vocabulary ("in blue", "cheaper", "more like the third one"); this one
shows whether success survives the way real shoppers phrase the same wish (issue 15).
"""

from __future__ import annotations

import random
import re

ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
           9: "ninth", 10: "tenth"}

OPENING = ["hi, i'm looking for {noun}", "hiya need {noun}", "do u have {noun}", "looking for {noun} pls",
           "can you find me {noun}", "i need {noun} for next week", "got any {bare}?", "{noun} please"]
TEMPLATES: dict[str, list[str]] = {
    "category": ["i meant {noun}", "actually {noun}", "no, {noun}", "more of {noun} really", "i was after {noun}",
                 "sorry i mean {noun}"],
    "gender": ["for {person}", "it's for {person}", "its for {person}", "{for_who}"],
    "colour": ["in {value}", "{value} would be better", "i'd prefer {value}", "make it {value}", "got it in {value}?",
               "{value} pls", "preferably {value}", "i'd rather have {value}", "switch to {value}"],
    "pattern": ["{value}", "something {value}", "{value} would be nice", "preferably {value}", "i want it {value}"],
    "price-down": ["cheaper", "too expensive", "something cheaper pls", "thats too pricey", "cheaper?",
                   "a bit less expensive"],
    "price-up": ["more expensive", "something more upscale", "better quality pls", "a pricier one"],
    "longer": ["longer", "a bit longer", "too short", "longer pls", "something longer"],
    "shorter": ["shorter", "a bit shorter", "too long", "shorter pls", "something shorter"],
    "lighter": ["lighter", "a lighter shade", "too dark", "something brighter", "lighter pls"],
    "darker": ["darker", "a darker shade", "too bright", "something darker", "darker pls"],
    "more formal": ["more formal", "smarter", "dressier", "something more elegant", "for the office"],
    "more casual": ["more casual", "something comfier", "more relaxed", "less formal", "more chill"],
    "detail": ["with {value}", "{value} would be good", "it needs {value}", "ideally with {value}"],
    "material": ["in {value}", "{value} please", "made of {value}", "something in {value}"],
    "more-like": ["more like the {ordinal} one", "like the {ordinal} one", "something like number {rank}",
                  "more like #{rank} pls", "ones like the {ordinal}"],
    "show-more": ["show me more", "none of these", "more options pls", "something else?", "nope, more pls"],
}
PEOPLE = {"women": ["my wife", "my mum", "my girlfriend", "a woman", "my sister"],
          "men": ["my husband", "my dad", "my boyfriend", "a guy", "my brother"],
          "kids": ["my son", "my daughter", "a 6 year old", "my little girl", "a toddler"]}
FOR_WHO = {"women": ["womens", "for ladies"], "men": ["mens", "for men"], "kids": ["kids", "for kids"]}
PATTERNS = {"with a print": "printed", "in denim": "denim", "in lace": "lacy", "colour block": "colour block"}
TYPO_RATE = 0.25


class Paraphraser:
    """Seeded: the same seed writes the same messages for the same points."""

    def __init__(self, seed: int = 0, typo_rate: float = TYPO_RATE) -> None:
        self.rng = random.Random(seed)
        self.typo_rate = typo_rate

    def opening(self, noun: str) -> str:
        bare = re.sub(r"^(?:a|an|some)\s+", "", noun)
        return self._finish(self.rng.choice(OPENING).format(noun=noun, bare=bare))

    def feedback(self, parts: list[tuple[str, str, str]], close: int | None) -> str:
        """``parts``: (kind, plain text, value) per feedback point; ``close``: the rank pointed at, if any."""
        written = [self._point(kind, plain, value) for kind, plain, value in parts]
        if close is not None:
            written.insert(0, self.rng.choice(TEMPLATES["more-like"]).format(ordinal=ORDINAL[close], rank=close))
        if not written:
            written = [self.rng.choice(TEMPLATES["show-more"])]
        joiner = self.rng.choice([", ", " and ", ". ", ", and "])
        return self._finish(joiner.join(written))

    def _point(self, kind: str, plain: str, value: str) -> str:
        if kind == "gender":
            template = self.rng.choice(TEMPLATES["gender"])
            return template.format(person=self.rng.choice(PEOPLE[value]), for_who=self.rng.choice(FOR_WHO[value]))
        if kind == "pattern":
            value = PATTERNS.get(plain, plain.removeprefix("in ").removeprefix("with "))
        if kind in TEMPLATES and kind not in ("gender",):
            return self.rng.choice(TEMPLATES[kind]).format(value=value, noun=value)
        return plain

    def _finish(self, text: str) -> str:
        text = text.lower()
        if self.rng.random() < self.typo_rate:
            text = self._typo(text)
        return text

    def _typo(self, text: str) -> str:
        """One typo in one longer word: a dropped, doubled or swapped letter."""
        words = [(m.start(), m.end()) for m in re.finditer(r"[a-z]{5,}", text)]
        if not words:
            return text
        start, end = self.rng.choice(words)
        word = text[start:end]
        i = self.rng.randrange(1, len(word) - 1)
        kind = self.rng.choice(["drop", "double", "swap"])
        if kind == "drop":
            word = word[:i] + word[i + 1:]
        elif kind == "double":
            word = word[:i] + word[i] + word[i:]
        else:
            word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        return text[:start] + word + text[end:]
