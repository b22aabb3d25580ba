"""The parser's vocabulary: ``prompts/intents.yaml`` (what the shopper wants done) and ``prompts/vocabulary.yaml``
(what their words mean), compiled once into the regexes the extractors and rules match on.

Words live in the data; this module only says where a phrase may stand (before a value, at the start, ...), so
extending the parser is editing YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from atelier.tools.lexicon import alternation, load_prompt_yaml, negation_tail, phrases


@dataclass(frozen=True)
class References:
    """Patterns that find references to shown results, in the order they are tried, with their kind."""

    patterns: tuple[tuple[re.Pattern[str], str], ...]
    ordinals: dict[str, int]
    number_words: dict[str, int]
    first_n: dict[str, int]
    ordinal_word: re.Pattern[str]
    pronouns: re.Pattern[str]
    like_this: re.Pattern[str]


@dataclass(frozen=True)
class Reactions:
    """What the words around a reference say the shopper does with it."""

    similar_before: re.Pattern[str]
    dislike_before: re.Pattern[str]
    dislike_after: re.Pattern[str]
    like_before: re.Pattern[str]
    like_after: re.Pattern[str]


@dataclass(frozen=True)
class Cues:
    """Decision-rule cues of ``intents.yaml`` beyond the fixed phrases."""

    which_compares: re.Pattern[str]
    pair_differs: re.Pattern[str]
    pair_words: re.Pattern[str]
    product_parts: re.Pattern[str]
    asks_in: re.Pattern[str]
    outfit_split: re.Pattern[str]
    photo_similar: re.Pattern[str]
    variant_request: re.Pattern[str]
    variant_details: re.Pattern[str]
    chat_filler: frozenset[str]
    preference: re.Pattern[str]


@dataclass(frozen=True)
class Vocabulary:
    """Both prompt files, compiled."""

    exemplars: dict[str, list[str]]
    rules: dict[str, re.Pattern[str]]
    request_openers: re.Pattern[str]
    question_openers: re.Pattern[str]
    refine_openers: re.Pattern[str]
    show_more: re.Pattern[str]
    cues: Cues
    relative: dict[str, re.Pattern[str]]
    relative_negated: re.Pattern[str]
    allow_before: re.Pattern[str]
    allow_after: re.Pattern[str]
    negations: re.Pattern[str]
    relax_before: re.Pattern[str]
    override: re.Pattern[str]
    list_join: re.Pattern[str]
    conjunction: re.Pattern[str]
    positive_after: re.Pattern[str]
    extra: dict[str, dict[str, str]]
    extra_pattern: re.Pattern[str]
    groups: dict[str, str]
    group_pattern: re.Pattern[str]
    category_words: dict[str, list[str]]
    category_word_pattern: re.Pattern[str]
    ages: re.Pattern[str]
    kids_max_age: int
    age_department: str
    shorthand: dict[str, str]
    not_over: re.Pattern[str]
    around: re.Pattern[str]
    references: References
    reactions: Reactions
    negated_detail: re.Pattern[str]
    negation_words: re.Pattern[str]
    filler: re.Pattern[str]
    tidy_similar: re.Pattern[str]
    tidy_lead: re.Pattern[str]

    @classmethod
    def load(cls, intents: dict[str, Any] | None = None, words: dict[str, Any] | None = None) -> Vocabulary:
        intents = intents or load_prompt_yaml("intents.yaml")
        words = words or load_prompt_yaml("vocabulary.yaml")
        extra = {facet: {k.lower(): v for k, v in ws.items()} for facet, ws in words["extra_synonyms"].items()}
        groups = {w.lower(): g for g, ws in words["group_words"].items() for w in ws}
        conjunctions = alternation(words["conjunctions"], strict=False)
        price = words["price"]
        details = words["details"]
        return cls(
            exemplars=intents["exemplars"],
            rules={name: phrases(ws) for name, ws in intents["rules"].items()},
            request_openers=phrases(intents["request_openers"], anchor="start"),
            question_openers=phrases(intents["question_openers"], anchor="start"),
            refine_openers=phrases(intents["refine_openers"], anchor="start"),
            show_more=phrases(intents["show_more"]),
            cues=_cues(intents["cues"]),
            relative={name: phrases(ws) for name, ws in words["relative"].items()},
            relative_negated=re.compile(alternation(words["relative_negations"], strict=False)
                                        + rf"(?:\s+{alternation(words['relative_negation_fillers'], strict=False)})*"
                                        + r"\s*$"),
            allow_before=phrases(words["allow_before"], anchor="end"),
            allow_after=phrases(words["allow_after"], anchor="start"),
            negations=re.compile(alternation(words["negations"]) + negation_tail(1) + r"\s*$"),
            relax_before=phrases(words["relax_before"], anchor="end", strict=False),
            override=phrases(words["override_cues"], strict=False),
            list_join=re.compile(rf"[\s,/]*(?:{conjunctions}|,)?[\s,/]*(?:no\s+)?"),
            conjunction=re.compile(conjunctions),
            positive_after=phrases(words["positive_after"], anchor="start"),
            extra=extra,
            extra_pattern=phrases([w for ws in extra.values() for w in ws]),
            groups=groups,
            group_pattern=phrases(list(groups)),
            category_words={k.lower(): list(v) for k, v in words["category_words"].items()},
            category_word_pattern=phrases(list(words["category_words"])),
            ages=_ages(words["ages"]),
            kids_max_age=int(words["ages"]["kids_max"]),
            age_department=words["ages"]["department"],
            shorthand={str(k).lower(): str(v) for k, v in words["shorthand"].items()},
            not_over=re.compile(alternation(price["not_over_negations"], strict=False) + r"\s+"
                                + alternation(price["over"], strict=False) + r"\s*[$€£]?(\d+(?:[.,]\d+)?)"),
            around=re.compile(alternation(price["around"], strict=False) + r"\s*[$€£]?(\d+(?:[.,]\d+)?)"),
            references=_references(words),
            reactions=_reactions(words["reactions"]),
            negated_detail=re.compile(alternation(details["negated"], strict=False) + r"\s+(?:"
                                      + alternation(details["negated_determiners"], strict=False) + r"\s+)?[\w-]+"),
            negation_words=phrases(details["negation_words"], strict=False),
            filler=phrases(details["filler"], strict=False),
            tidy_similar=re.compile(rf"^\s*(?:{alternation(details['tidy_similar'], strict=False)}\s+)*"
                                    r"(?:like|similar to)\b"),
            tidy_lead=re.compile(rf"^[\s,]*{alternation(details['tidy_lead'], strict=False)}"),
        )


def _ages(ages: dict[str, Any]) -> re.Pattern[str]:
    """ "5 year old", "8yo", "aged 7": the number is group ``n``."""
    after = alternation(ages["after_number"], strict=False)
    before = alternation(ages["before_number"], strict=False)
    return re.compile(rf"\b(?P<n>\d{{1,2}})\s*-?\s*{after}|{before}\s+(?P<m>\d{{1,2}})\b")


def _cues(cues: dict[str, list[str]]) -> Cues:
    return Cues(
        which_compares=re.compile(r"\bwhich\b.*" + alternation(cues["which_compares"], strict=False)),
        pair_differs=phrases(cues["pair_differs"], strict=False),
        pair_words=phrases(cues["pair_words"], strict=False),
        product_parts=phrases(cues["product_parts"], strict=False),
        asks_in=phrases(cues["asks_in"], anchor="end", strict=False),
        outfit_split=re.compile(alternation(cues["outfit_verbs"], strict=False) + r".{0,40}\bwith\b"),
        photo_similar=phrases(cues["photo_similar"], strict=False),
        variant_request=phrases(cues["variant_request"], strict=False),
        variant_details=phrases(cues["variant_details"], strict=False),
        chat_filler=frozenset(cues["chat_filler"]),
        preference=phrases(cues["preference"], strict=False),
    )


def _references(words: dict[str, Any]) -> References:
    refs = words["references"]
    ordinals = {str(k): int(v) for k, v in words["ordinals"].items()}
    number_words = {str(k): int(v) for k, v in words["number_words"].items()}
    first_n = {str(k): int(v) for k, v in refs["first_n"].items()}
    ords = "|".join(re.escape(o) for o in sorted(ordinals, key=len, reverse=True))
    counts = "|".join(re.escape(c) for c in sorted(first_n, key=len, reverse=True))
    nouns = "|".join(re.escape(n) for n in refs["nouns"])
    markers = "|".join(re.escape(m) for m in sorted(refs["number_markers"], key=len, reverse=True))
    word_markers = "|".join(re.escape(m) for m in refs["word_markers"])
    numbers = "|".join(re.escape(w) for w in sorted(number_words, key=len, reverse=True))
    patterns = (
        (re.compile(rf"\b(?:the\s+)?(?:{ords})\s+(?:{counts})\b"), "first_n"),
        (re.compile(rf"\bthe\s+(?P<o>{ords})\b(?:\s+(?:{nouns}))?"), "ordinal"),
        (re.compile(rf"\b(?P<o>{ords})\s+(?:{nouns})\b"), "ordinal"),
        (re.compile(rf"(?:#\s?|\b(?:{markers})\s*)(?P<n>10|[1-9])\b"), "number"),
        (re.compile(rf"\b(?:{word_markers})\s+(?P<w>{numbers})\b"), "word"),
        (phrases(refs["top"], strict=False), "top"),
        (re.compile(rf"\b(?:the\s+)?(?P<n>[1-9]\d?)(?:st|nd|rd|th)\b(?:\s+(?:{nouns}))?"), "number"),
    )
    like_this = alternation(refs["like_this"], strict=False) + "|" + alternation(refs["like_this_start"], "start",
                                                                                 strict=False)
    return References(patterns=patterns, ordinals=ordinals, number_words=number_words, first_n=first_n,
                      ordinal_word=re.compile(rf"\b({ords})\b"), pronouns=phrases(refs["pronouns"], strict=False),
                      like_this=re.compile(like_this))


def _reactions(r: dict[str, list[str]]) -> Reactions:
    def loose(key: str) -> str:
        return alternation(r[key], strict=False)

    subjects = "|".join(re.escape(s) + r"\b" for s in r["like_subjects"])
    similar = rf"(?:{loose('similar_before')}|^\s*like|\b(?!{subjects})[a-z-]{{2,}}\s+like)\s*$"
    verbs = loose("verbs")
    dislike_after = (rf"^\s*{verbs}\s+(?:{loose('dislike_adverbs')}\s+)?{loose('dislike_words')}"
                     rf"|^\s*{loose('dislike_after')}")
    like_before = rf"(?:{loose('like_subjects_verbs')}\s+{loose('like_verbs')}|{loose('like_before')})\s*$"
    like_after = rf"^\s*{verbs}\s+(?:{loose('like_adverbs')}\s+)?{loose('like_words')}|^\s*{loose('like_after')}"
    return Reactions(similar_before=re.compile(similar), dislike_before=phrases(r["dislike_before"], "end", False),
                     dislike_after=re.compile(dislike_after), like_before=re.compile(like_before),
                     like_after=re.compile(like_after))


def spelling_targets(taxonomy_words: list[str]) -> list[str]:
    """Every single word of the phrases the parser matches on facets and intents with: what a typo may be
    corrected into."""
    intents, words = load_prompt_yaml("intents.yaml"), load_prompt_yaml("vocabulary.yaml")
    phrases = [*taxonomy_words, *intents["show_more"], *intents["refine_openers"], *words["category_words"],
               *(str(k) for k in words["ordinals"]), *(str(k) for k in words["number_words"])]
    phrases += [w for ws in (*words["relative"].values(), *intents["rules"].values(), *words["group_words"].values())
                for w in ws]
    phrases += [w for ws in words["extra_synonyms"].values() for w in ws]
    return sorted({w for p in phrases for w in re.findall(r"[a-z]+", p.lower())})


@lru_cache(maxsize=1)
def get_vocabulary() -> Vocabulary:
    return Vocabulary.load()
