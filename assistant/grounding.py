"""Keep LLM replies honest and LLM prompts clean.

Two directions, one module:

* **Out** (``ground_reply``, ``GroundedStream``): a reply may only state product ids and prices that
  the shown results (or tool facts) support. Anything else is cut out, so a small or misled model
  cannot invent a bargain or point at an article that does not exist. Every money claim counts (a
  price word a few words before a number, "50% off", "for free"), every URL and markdown link or
  image is cut (a reply is plain text; an image URL would make the shopper's browser leak data to
  whoever wrote it: OWASP LLM05, improper output handling), HTML tags are dropped, and a sentence
  that repeats the system prompt (eight words in a row) is cut (LLM07, system prompt leakage).
* **Honest** (``unmatched``): when the results lack some words of the request ("golf" in "golf shoes"), a
  sentence that names such a word without saying it is missing, or calls the results a match, is cut: the
  shopper must never read that the shoes are golf shoes.
* **In** (``as_data``, ``looks_like_injection``): untrusted text (product descriptions, shopper
  messages) enters a prompt only as quoted, single-line, delimited data, so instructions hidden in it
  read as content rather than as orders.

The checks are regular expressions on purpose: they are predictable, fast enough to run on every
streamed sentence, and easy to test with adversarial strings.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import yaml
from pydantic import BaseModel, Field

from atelier.tools.schema import SearchResult
from atelier.tools.settings import PROMPTS_DIR

__all__ = ["GroundedReply", "GroundedStream", "as_data", "false_claims", "ground_reply", "leaks_system_prompt",
           "looks_like_injection", "sanitize"]


class GroundedReply(BaseModel):
    """A reply after grounding: ``removed`` lists every cut claim; ``flagged`` says the reply needed
    cutting or reads like an injected instruction, so the caller may prefer its template reply."""

    text: str
    removed: list[str] = Field(default_factory=list)
    flagged: bool = False


# --- claims: prices and catalog ids -------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CUR_BEFORE = r"(?:US\$|\$|€|£|¥|₹|\bRs\.?|\bUSD|\bEUR|\bGBP|\bSEK|\bINR)"
_CUR_AFTER = r"\s?(?:[$€£]|(?:USD|EUR|GBP|SEK|INR|kr|dollars?|euros?|pounds?|bucks|rupees?)\b)"
_PRICE_WORD = r"\b(?:prices?|priced(?:\s+at)?|costs?|costing|retails?\s+(?:for|at)|sells?\s+for|on\s+sale\s+for)\b"

_NOT_MONEY = r"(?!\s*(?:%|percent|pieces|pcs|items|colours|colors|sizes))"
_PRICE_PATTERNS = [
    re.compile(rf"{_CUR_BEFORE}\s?(?P<num>{_NUM})(?![\d])"),
    re.compile(rf"(?<![\d.,$€£¥₹])(?P<num>{_NUM}){_CUR_AFTER}"),
    re.compile(rf"{_PRICE_WORD}(?:[\s:]+(?![\d])[\w'’-]+){{0,3}}?[\s:]+"
               rf"(?P<num>{_NUM})(?![\d]){_NOT_MONEY}", re.I),
    re.compile(rf"(?<![\d.,])(?P<num>{_NUM})\s+(?:is|as|was)\s+(?:the\s+|a\s+|its\s+|their\s+)?"
               rf"(?:new\s+|final\s+|sale\s+|real\s+)?(?:price|cost)\b", re.I),
]
_MONEY_PHRASES = re.compile(
    r"\b(?:for\s+free|free\s+of\s+charge|(?:is|are)\s+(?:now\s+)?free\b|free\s+(?:shipping|delivery|returns?)|"
    r"\d{1,3}\s?(?:%|percent)\s+(?:off|discount)|half[-\s]price|discount(?:ed|s)?|coupons?|vouchers?|"
    r"promo(?:tion(?:al)?)?\s+codes?|clearance)\b", re.I)
_LINKS = re.compile(
    r"!?\[[^\]\n]{0,200}\]\([^)\n]{0,2000}\)"
    r"|\b(?:https?|ftp|file|data|javascript|vbscript):[^\s<>\"')\]]+"
    r"|\bwww\.[^\s<>\"')\]]+", re.I)
_HTML_TAG = re.compile(r"<!--.*?-->|</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]{0,500})?/?>", re.S)
_LEAK_WORDS = 8
_ID_WORD = (r"(?:\b(?:ids?|sku|article|item|product|style|ref(?:erence)?)(?:\s+(?:id|no\.?|number|code|#))?"
            r"\s*[:#]?\s*#?|#\s*)")
_ID_PATTERNS = [
    re.compile(rf"{_ID_WORD}(?P<num>\d{{4,10}})\b", re.I),
    re.compile(r"[\[(]\s*(?P<num>\d{4,10})\s*[\])]"),
    re.compile(r"(?<![\d.,$€£¥₹])(?P<num>\d{6,10})\b(?![.,]\d)"),
]
_BUDGET_WORDS = re.compile(
    r"\b(?:under|below|less\s+than|up\s+to|within|max(?:imum)?|budget|cheaper\s+than|at\s+most|no\s+more\s+than)"
    r"\b[^.!?\n]{0,12}$", re.I)
_ANY_NUM = re.compile(_NUM)
_BOUNDARY = re.compile(r"(?:[.!?…](?=[\s\"')\]])|\n)[\s\"')\]]*")


def _to_float(num: str) -> float:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", num):
        return float(num.replace(",", ""))
    return float(num.replace(",", "."))


def _numbers(texts: Iterable[str]) -> set[float]:
    return {_to_float(m.group()) for t in texts for m in _ANY_NUM.finditer(t)}


def _digits(texts: Iterable[str]) -> set[str]:
    return {m.lstrip("0") for t in texts for m in re.findall(r"\d{4,}", t)}


def _price_ok(value: float, prices: Iterable[float]) -> bool:
    """A stated price matches a real one when it is that price, rounded or truncated to whole units."""
    return any(abs(value - p) < 0.005 or abs(value - round(p)) < 0.005 or abs(value - math.floor(p)) < 0.005
               for p in prices)


_NEGATION = re.compile(r"\b(?:no|not|none|nothing|never|without|lacks?|missing|can't|cannot|couldn't|don't|doesn't|"
                       r"didn't|isn't|aren't|wasn't|haven't|hasn't|unable|neither|nor|instead|other|closest)\b|n't\b",
                       re.I)
_MATCH_CLAIM = re.compile(r"\b(?:match(?:es|ing)?|exactly|perfect(?:ly)?|just what|ideal)\b", re.I)


def false_claims(sentence: str, unmatched: Sequence[str]) -> list[str]:
    """The unmatched request terms a sentence claims: it names one (or calls the results a match) and says
    nothing of it being missing. "These golf shoes are great" claims "golf"; "I have no golf shoes" does not."""
    if not unmatched or _NEGATION.search(sentence):
        return []
    named = [t for t in unmatched if re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", sentence, re.I)]
    if not named and _MATCH_CLAIM.search(sentence):
        named = [_MATCH_CLAIM.search(sentence).group()]
    return named


class _Grounder:
    """The allowed ids and prices of one turn, and the cutting of everything else."""

    def __init__(self, results: Sequence[SearchResult], facts: Iterable[str], user_text: Iterable[str],
                 unmatched: Iterable[str] = ()) -> None:
        self.unmatched = [u for u in unmatched if u]
        facts = [f for f in facts if f]
        user_text = [u for u in user_text if u]
        self.prices = [r.price for r in results if r.price is not None] + sorted(_numbers(facts))
        self.budgets = sorted(_numbers(user_text))
        self.ids = {r.id.lstrip("0") for r in results} | _digits(r.title for r in results) | _digits(facts) \
            | _digits(user_text)
        self.facts_text = " ".join(facts).lower()

    def claims(self, text: str) -> list[tuple[int, int, str]]:
        """Unsupported claims as (start, end, matched text), earliest first, never overlapping."""
        spans: list[tuple[int, int, str, bool]] = []
        for pattern in _PRICE_PATTERNS:
            for m in pattern.finditer(text):
                value = _to_float(m.group("num"))
                supported = _price_ok(value, self.prices) or (
                    bool(_BUDGET_WORDS.search(text[:m.start()])) and _price_ok(value, self.budgets))
                spans.append((m.start(), m.end(), m.group(), supported))
        for m in _MONEY_PHRASES.finditer(text):
            spans.append((m.start(), m.end(), m.group(), m.group().lower() in self.facts_text))
        for m in _LINKS.finditer(text):
            spans.append((m.start(), m.end(), m.group(), False))
        taken = [(s, e) for s, e, _, _ in spans]
        for pattern in _ID_PATTERNS:
            for m in pattern.finditer(text):
                if any(s < m.end() and m.start() < e for s, e in taken):
                    continue
                supported = m.group("num").lstrip("0") in self.ids
                spans.append((m.start(), m.end(), m.group(), supported))
                taken.append((m.start(), m.end()))
        spans.sort()
        merged: list[list[Any]] = []
        for start, end, matched, supported in spans:
            if merged and start < merged[-1][1]:
                last = merged[-1]
                if end > last[1]:
                    last[2] += matched[last[1] - start:]
                last[1], last[3] = max(last[1], end), last[3] and supported
            else:
                merged.append([start, end, matched, supported])
        return [(start, end, matched) for start, end, matched, supported in merged if not supported]

    def apply(self, text: str) -> tuple[str, list[str]]:
        """``text`` with unsupported claims cut out, and what was cut.

        A claim in brackets ("(id 0123456789)", "[$12]") is cut alone; a claim in running text takes
        its whole sentence with it, because "costs $12" minus "$12" leaves a sentence that is
        ungrammatical or still wrong. Leading and trailing whitespace are kept for streaming.
        """
        removed = [m.group() for m in _HTML_TAG.finditer(text)]
        text = _HTML_TAG.sub("", text) if removed else text
        kept: list[str] = []
        for sentence in _sentences(text):
            if leaks_system_prompt(sentence):
                removed.append(sentence.strip())
                continue
            untrue = false_claims(sentence, self.unmatched)
            if untrue:
                removed.extend(untrue)
                continue
            claims = self.claims(sentence)
            if not claims:
                kept.append(sentence)
                continue
            removed.extend(matched.strip() for _, _, matched in claims)
            out = sentence
            for start, end, matched in reversed(claims):
                bracket = _enclosing_brackets(out, start, end, matched)
                if bracket is None:
                    out = ""
                    break
                out = out[:bracket[0]].rstrip(" \t") + out[bracket[1]:]
            if out.strip():
                kept.append(_tidy(out))
        return "".join(kept), removed


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _normalise(text).lower())


@lru_cache(maxsize=1)
def _system_prompt_shingles() -> frozenset[tuple[str, ...]]:
    words = _words((PROMPTS_DIR / "system.md").read_text(encoding="utf-8"))
    return frozenset(tuple(words[i:i + _LEAK_WORDS]) for i in range(len(words) - _LEAK_WORDS + 1))


def leaks_system_prompt(text: str) -> bool:
    """Does ``text`` repeat ``_LEAK_WORDS`` consecutive words of the system prompt (``prompts/system.md``)?

    Eight words in a row do not happen by chance in a shopping reply, and paraphrase-level leaks carry
    little: the rules hold no secret, but echoing them invites the next jailbreak to quote them back.
    """
    words = _words(text)
    shingles = _system_prompt_shingles()
    return any(tuple(words[i:i + _LEAK_WORDS]) in shingles for i in range(len(words) - _LEAK_WORDS + 1))


def _enclosing_brackets(text: str, start: int, end: int, matched: str) -> tuple[int, int] | None:
    """The span of the brackets around a claim ("(item 0123456789)", "[$12]", "(id: 0123456789)"), if any."""
    if (matched[:1] in "([" or matched[:2] == "![") and matched[-1:] in ")]":  # brackets, markdown links/images
        return start, end
    before = re.search(r"[(\[](?P<label>[\s:#,]*(?:[a-z]+[\s.:#]*)?)$", text[:start], re.I)
    after = re.match(r"\s*[)\]]", text[end:])
    if before is None or after is None:
        return None
    return before.start(), end + after.end()


def _sentences(text: str) -> list[str]:
    """``text`` split after each sentence end (the whitespace after it stays with the sentence)."""
    cuts = [m.end() for m in _BOUNDARY.finditer(text)]
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)]) if text[i:j]]


def _tidy(text: str) -> str:
    """Repair the seams a cut leaves: doubled spaces, space before punctuation, empty brackets."""
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    body = text.strip()
    body = re.sub(r"[(\[]\s*[)\]]", "", body)
    body = re.sub(r"[ \t]+([,.;:!?])", r"\1", body)
    body = re.sub(r"([,;:])\s*([,.;:!?])", r"\2", body)
    body = re.sub(r"[ \t]{2,}", " ", body)
    body = re.sub(r"^[,;:\-–—]\s*", "", body)
    return lead + body + trail


def ground_reply(text: str, results: Sequence[SearchResult], facts: Iterable[str] = (), *,
                 user_text: Iterable[str] = (), unmatched: Iterable[str] = ()) -> GroundedReply:
    """Cut every product id and price in ``text`` that ``results`` or ``facts`` do not support.

    ``facts`` are trusted tool outputs (VQA answers, the template reply): any number in them may be
    repeated. ``user_text`` (the shopper's message, the memory) only supports budgets: "under $50" may
    echo the shopper's "below 50", but "costs $50" still needs a product that costs 50. ``unmatched``: request
    terms no result satisfies; a sentence claiming one is cut (``false_claims``).
    """
    grounded, removed = _Grounder(results, facts, user_text, unmatched).apply(text)
    grounded = grounded.strip()
    return GroundedReply(text=grounded, removed=removed, flagged=bool(removed) or looks_like_injection(grounded))


class GroundedStream(Iterator[str]):
    """Ground a stream of chunks sentence by sentence, so grounding never waits for the whole reply.

    A sentence is released once its end is seen (or when 240 characters pile up without one); an
    unsupported claim is cut before the shopper sees it. When grounding leaves nothing, ``fallback``
    (the template reply) is streamed instead, so a reply is never empty. After the stream ends,
    ``report()`` gives the joined text and everything removed.
    """

    def __init__(self, chunks: Iterable[str], results: Sequence[SearchResult], facts: Iterable[str] = (), *,
                 user_text: Iterable[str] = (), fallback: str = "", unmatched: Iterable[str] = ()) -> None:
        self._chunks = iter(chunks)
        self._grounder = _Grounder(results, facts, user_text, unmatched)
        self._buffer = ""
        self._pending: list[str] = []
        self._done = False
        self._fallback = fallback
        self.fell_back = False
        self.removed: list[str] = []
        self.emitted: list[str] = []

    def __next__(self) -> str:
        while not self._pending:
            if self._done:
                if not self.fell_back and self._fallback and not "".join(self.emitted).strip():
                    self.fell_back = True
                    self.emitted.append(self._fallback)
                    return self._fallback
                raise StopIteration
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
                self._release(len(self._buffer))
                continue
            ends = [m.end() for m in _BOUNDARY.finditer(self._buffer) if m.end() < len(self._buffer)]
            if ends:
                self._release(ends[-1])
            elif len(self._buffer) > 240 and (space := self._buffer.rfind(" ", 0, len(self._buffer) - 24)) > 0:
                self._release(space + 1)
        return self._pending.pop(0)

    def _release(self, upto: int) -> None:
        segment, self._buffer = self._buffer[:upto], self._buffer[upto:]
        if not segment:
            return
        grounded, removed = self._grounder.apply(segment)
        self.removed.extend(removed)
        if not self.emitted:
            grounded = grounded.lstrip()
        if grounded:
            self.emitted.append(grounded)
            self._pending.append(grounded)

    def report(self) -> GroundedReply:
        """The reply as streamed so far, with what was removed (complete once the stream is exhausted)."""
        text = "".join(self.emitted).strip()
        return GroundedReply(text=text, removed=list(self.removed),
                             flagged=bool(self.removed) or self.fell_back or looks_like_injection(text))


# --- untrusted text going into prompts ----------------------------------------------------------

_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_DELIMITER_LOOKALIKE = re.compile(
    r"<\|[^|>]{0,40}\|>|<{2,}|>{2,}|«+|»+|‹+|›+|`{3,}|\"{3,}|'{3,}|={4,}|-{4,}|#{3,}")


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return _INVISIBLE.sub("", text)


@lru_cache(maxsize=1)
def _injection_patterns() -> tuple[re.Pattern[str], ...]:
    data = yaml.safe_load((PROMPTS_DIR / "guard.yaml").read_text(encoding="utf-8"))
    return tuple(re.compile(p, re.I) for p in data["injection"])


def looks_like_injection(text: str) -> bool:
    """Heuristic: does ``text`` try to instruct the model (override its rules, switch its role, extract its
    prompt)? The patterns are data (``prompts/guard.yaml``).

    For LLM output and catalog text it flags; for a shopper's message ``assistant.guard`` keeps it out of
    memory. Quoting with :func:`as_data` stays the defence inside prompts.
    """
    text = _normalise(text)
    return any(p.search(text) for p in _injection_patterns())


def as_data(text: str, *, label: str = "data", limit: int = 600) -> str:
    """Quote untrusted ``text`` for a prompt: one line, no control or invisible characters, no look-alikes
    of the delimiters, at most ``limit`` characters, wrapped in ``<<<label>>> ... <<<end label>>>``.

    The system prompt tells the model that whatever sits between these markers is data to describe,
    never instructions to follow.
    """
    label = re.sub(r"[^a-z0-9 _-]", "", label.lower())[:24] or "data"
    return f"<<<{label}>>> {sanitize(text, limit)} <<<end {label}>>>"


def sanitize(text: str, limit: int = 600) -> str:
    """``text`` as one clean line: what :func:`as_data` quotes, for prompts too small for markers."""
    clean = _normalise(text)
    clean = _CONTROL.sub(" ", clean.replace("\n", " ").replace("\t", " "))
    clean = _DELIMITER_LOOKALIKE.sub(" ", clean)
    clean = re.sub(r"\s{2,}", " ", clean).strip()
    if len(clean) > limit:
        clean = clean[: max(0, limit - 1)].rstrip() + "…"
    return clean
