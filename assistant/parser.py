"""Read one shopper message into a typed ``TurnIntent``: what they want done, and what changed.

Deterministic on purpose, so the offline assistant is predictable and testable: fixed phrases from
``prompts/intents.yaml`` decide the clear cases, the shared taxonomy finds facet values (must / avoid /
allowed again), ``tools.query_parser`` finds prices, and only messages no rule understands are matched
by embedding similarity against the intent exemplars (MiniLM through ``load_encoder().embed_texts``).
An LLM router produces the same ``TurnIntent`` type.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import yaml

from atelier.memory.intent import INTENTS, IntentName, ParseContext, TurnIntent  # noqa: F401 - re-exported
from atelier.tools.query_parser import parse_price
from atelier.tools.settings import PROMPTS_DIR
from atelier.tools.taxonomy import Mention, Taxonomy, get_taxonomy

log = logging.getLogger(__name__)

EMBEDDING_FLOOR = 0.62

ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
            "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
            "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "last": -1}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10}
PRODUCT_PARTS = re.compile(r"\b(?:fabric|material|lining|lined|zip|zipper|pockets?|sleeves?|neckline|collar|fit|"
                           r"fits|sizing|size|sizes|length|care|wash|washable|washing|iron|made of|made from|"
                           r"waterproof|stretchy|stretch|see-through|transparent|warm|breathable|buttons?|hood)\b")
OUTFIT_SPLIT = re.compile(r"\b(?:pair|wear|match|combine|team|go)\b.{0,40}\bwith\b")
POSITIVE_AFTER = re.compile(r"\s*(?:ones?|only|instead|please|is better|would be better|then)\b")
CHAT_FILLER = {"there", "you", "so", "much", "very", "a", "lot", "again", "all", "that's", "thats", "it", "is",
               "oh", "ah", "and", "well", "bot", "atelier", "guys", "folks"}
PRONOUNS = re.compile(r"\b(?:it|this|that|this one|that one|these|those|they|them|its|it's|one you showed)\b")


@dataclass
class Vocabulary:
    """``prompts/intents.yaml``, compiled."""

    exemplars: dict[str, list[str]]
    rules: dict[str, re.Pattern[str]]
    request_openers: re.Pattern[str]
    question_openers: re.Pattern[str]
    refine_openers: re.Pattern[str]
    show_more: re.Pattern[str]
    relative: dict[str, re.Pattern[str]]
    allow_before: re.Pattern[str]
    allow_after: re.Pattern[str]
    negations: re.Pattern[str]
    extra: dict[str, dict[str, str]]
    extra_pattern: re.Pattern[str]
    groups: dict[str, str]
    group_pattern: re.Pattern[str]

    @classmethod
    def load(cls, path: Any = None) -> "Vocabulary":
        data = yaml.safe_load((path or PROMPTS_DIR / "intents.yaml").read_text())
        extra = {facet: {k.lower(): v for k, v in words.items()} for facet, words in data["extra_synonyms"].items()}
        groups = {w.lower(): g for g, words in data["group_words"].items() for w in words}
        return cls(
            exemplars=data["exemplars"],
            rules={name: _phrases(words) for name, words in data["rules"].items()},
            request_openers=_phrases(data["request_openers"], anchor="start"),
            question_openers=_phrases(data["question_openers"], anchor="start"),
            refine_openers=_phrases(data["refine_openers"], anchor="start"),
            show_more=_phrases(data["show_more"]),
            relative={name: _phrases(words) for name, words in data["relative"].items()},
            allow_before=_phrases(data["allow_before"], anchor="end"),
            allow_after=_phrases(data["allow_after"], anchor="start"),
            negations=re.compile(_phrases(data["negations"]).pattern
                                 + r"(?:\s+(?:any|the|a|an|those|these|that|more|too\s+much))?\s*$"),
            extra=extra,
            extra_pattern=_phrases([w for words in extra.values() for w in words]),
            groups=groups,
            group_pattern=_phrases(list(groups)),
        )


def _phrases(words: list[str], anchor: str | None = None) -> re.Pattern[str]:
    """One regex for a phrase list, longest first, on word boundaries (``anchor``: at start / end of text)."""
    alternation = "|".join(re.escape(w.strip().lower()) for w in sorted(words, key=len, reverse=True))
    body = rf"(?<![\w-])(?:{alternation})(?![\w-])"
    if anchor == "start":
        return re.compile(rf"^\s*{body}")
    if anchor == "end":
        return re.compile(rf"{body}\s*$")
    return re.compile(body)


@lru_cache(maxsize=1)
def get_vocabulary() -> Vocabulary:
    return Vocabulary.load()


_ORD = "|".join(sorted(ORDINALS, key=len, reverse=True))
_NOUN = r"(?:\s+(?:one|ones|item|items|option|options|pick|result|results|product|look|thing|choice|[a-z-]+s?))"
REFERENCE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b(?:the\s+)?(?:{_ORD})\s+(?:two|three|2|3)\b"), "first_n"),
    (re.compile(rf"\bthe\s+(?P<o>{_ORD})\b(?:\s+(?:one|item|option|pick|result|product))?"), "ordinal"),
    (re.compile(rf"\b(?P<o>{_ORD})\s+(?:one|item|option|pick|result|product)\b"), "ordinal"),
    (re.compile(r"(?:#\s?|\b(?:number|no\.?|nr\.?|option|item|result|pick|product)\s*)(?P<n>10|[1-9])\b"), "number"),
    (re.compile(r"\b(?:number|option|item)\s+(?P<w>one|two|three|four|five|six|seven|eight|nine|ten)\b"), "word"),
    (re.compile(r"\bthe\s+top\s+(?:one|pick|result)\b"), "top"),
    (re.compile(r"\b(?:the\s+)?(?P<n>[1-9]\d?)(?:st|nd|rd|th)\b(?:\s+(?:one|item|option|pick|result|product))?"),
     "number"),
]
SIMILAR_BEFORE = re.compile(r"(?:\b(?:more|something|anything|stuff|things|items|ones|others|some|similar|looks?|"
                            r"just|exactly|styles?|show me (?:some(?:thing)?|more|others|ones)?)\s+like|similar\s+to|"
                            r"same\s+as|close\s+to|along\s+the\s+lines\s+of|in\s+the\s+style\s+of|resembling|"
                            r"^\s*like|alternatives?\s+to|variations?\s+of|versions?\s+of|"
                            r"\b(?!i\b|we\b|you\b|really\b|do\b|would\b|i'd\b|also\b|really\b)[a-z-]{2,}\s+like)\s*$")
DISLIKE_BEFORE = re.compile(r"(?:\b(?:don't|do not|dont|didn't|did not)\s+(?:really\s+)?(?:like|love|want)|\bhate|"
                            r"\bdislike|\bnot\s+a\s+fan\s+of|\bno\s+to|\bremove|\bhide|\bget\s+rid\s+of|\bdrop|"
                            r"\bskip|\bnot|\bno|\bugh,?|\bexclude|\bnever\s+show(?:\s+me)?|\bbin)\s*$")
DISLIKE_AFTER = re.compile(r"^\s*(?:is|looks|seems|was)\s+(?:really\s+|so\s+|a\s+bit\s+|kind\s+of\s+)?"
                           r"(?:ugly|awful|horrible|bad|terrible|hideous|not\s+for\s+me|not\s+my\s+style|"
                           r"not\s+great|meh|boring|cheap-looking)|^\s*(?:isn't|is\s+not)\s+(?:for\s+me|my\s+style|"
                           r"nice|great|good)")
LIKE_BEFORE = re.compile(r"(?:\b(?:i|i\s+really|i\s+do|really)\s+(?:like|love|liked|loved|adore|fancy)|"
                         r"\b(?:love|keep|save|favourite|favorite|like)|\b(?:i'll|i\s+will)\s+(?:take|keep))\s*$")
LIKE_AFTER = re.compile(r"^\s*(?:is|looks|seems|was)\s+(?:really\s+|so\s+|very\s+|quite\s+)?"
                        r"(?:nice|great|perfect|lovely|cute|good|gorgeous|beautiful|amazing|stunning|pretty|cool|"
                        r"my\s+style|what\s+i\s+want)|^\s*(?:i\s+(?:like|love))")
NOT_OVER = re.compile(r"\b(?:nothing|not|no|never)\s+(?:over|above|more\s+than|beyond|exceeding)\s*[$€£]?"
                      r"(\d+(?:[.,]\d+)?)")
AROUND = re.compile(r"\b(?:around|about|approximately|roughly|circa|~)\s*[$€£]?(\d+(?:[.,]\d+)?)")
NEGATED_DETAIL = re.compile(r"\b(?:no|without|not|never|minus|lose|remove)\s+(?:any\s+|the\s+|a\s+)?[\w-]+")
NEGATION_WORDS = re.compile(r"\b(?:not|no|without|except|excluding|avoid|anything\s+but|don't\s+want|do\s+not\s+want|"
                            r"dont\s+want|don't\s+like|do\s+not\s+like|hate|rather\s+not|is\s+fine|is\s+ok|"
                            r"is\s+okay|are\s+fine|works|don't\s+mind|do\s+not\s+mind|fine\s+with|ok\s+with|"
                            r"after\s+all|too|also)\b")
FILLER = re.compile(r"\b(?:along the lines of|in the style of|similar to|close to|same as|alternatives? to|"
                    r"versions? of|variations? of|anything|everything|again|please|pls|thanks|thank you|hi|hello|hey|could you|can you|would you|show me|find me|"
                    r"i'm looking for|im looking for|i am looking for|looking for|i want|i need|i'd like|i would like|"
                    r"do you have|have you got|some|any|something|a|an|the|maybe|actually|instead|rather|just|"
                    r"one|ones|me|i|my|what about|how about|let's see|lets see|and|or|but|like|more|less|is|are|it|this|that|"
                    r"these|those|them|they|in|for|of|to|on|at|do|does|did|what|which|how|come|comes|now|ok|okay|"
                    r"would|will|be|can|could|should|get|got|have|has|had|want|need|show|see|find|look|looking|"
                    r"with|bit|little|lot|much|very|really|so|too|also|other|another|again|version|"
                    r"colour|color|shade|style|same|similar|don't|dont|else|there|here|yes|yeah|hmm|well|"
                    r"you|your|we|us|our|it's|i'm|im|i'd|let's|lets|go|try|instead|rather|prefer|make)\b")


class TurnParser:
    """Rules and vocabulary first, embedding similarity against intent exemplars for the rest."""

    def __init__(self, encoder: Any | None = None, taxonomy: Taxonomy | None = None,
                 vocabulary: Vocabulary | None = None, use_embeddings: bool = True) -> None:
        self._encoder = encoder
        self.taxonomy = taxonomy or get_taxonomy()
        self.vocab = vocabulary or get_vocabulary()
        self.use_embeddings = use_embeddings
        self._exemplar_vectors: np.ndarray | None = None
        self._exemplar_labels: list[str] = []

    # ---- public -------------------------------------------------------------------------------------
    def parse(self, text: str, context: ParseContext | None = None) -> TurnIntent:
        context = context or ParseContext()
        raw = (text or "").strip()
        low = _normalise(raw)
        state = _State(raw=raw, text=low, work=low)
        self._references(state, context)
        self._prices(state)
        self._relative(state)
        state.show_more = bool(self.vocab.show_more.search(state.work))
        if state.show_more:
            state.work = self.vocab.show_more.sub(" ", state.work)
        self._facets(state)
        intent, source, score = self._decide(state, context)
        question = raw if intent in ("question", "describe") else None
        if intent not in ("search", "refine", "composed"):
            state.relative = []
        if intent == "compare":
            state.price_min = state.price_max = None
        if intent == "compare" and len(state.references) < 2:
            digits = [int(d) for d in re.findall(r"(?<![\d.,$€£])\b(10|[1-9])\b(?![.,]?\d)", state.text)]
            digits += [ORDINALS[w] for w in re.findall(rf"\b({_ORD})\b", state.text)]
            state.references = _fill_pair(list(dict.fromkeys(state.references + digits)), context)
        new_topic = intent == "search" and context.has_results
        return TurnIntent(
            intent=intent, text=raw, details=_content(state.details_text()),
            change=_tidy(state.change_text), must=state.must, avoid=state.avoid,
            allow=state.allow, price_min=state.price_min, price_max=state.price_max, relative=state.relative,
            references=state.references, similar=state.similar, like=state.like, dislike=state.dislike,
            this=state.this, show_more=state.show_more, new_topic=new_topic, question=question, source=source,
            score=round(score, 4))

    def classify(self, text: str) -> tuple[str, float]:
        """Nearest intent by exemplar similarity, with its cosine (("search", 0.0) without an encoder)."""
        vectors = self._exemplars()
        encoder = self._get_encoder()
        if vectors is None or encoder is None:
            return "search", 0.0
        query = encoder.embed_texts([text])[0]
        sims = vectors @ query
        best = int(np.argmax(sims))
        return self._exemplar_labels[best], float(sims[best])

    # ---- steps --------------------------------------------------------------------------------------
    def _references(self, state: "_State", context: ParseContext) -> None:
        found: list[tuple[int, int, list[int]]] = []
        for pattern, kind in REFERENCE_PATTERNS:
            for m in pattern.finditer(state.work):
                if any(s < m.end() and m.start() < e for s, e, _ in found):
                    continue
                end = m.end()
                if kind != "first_n":
                    tail = self.taxonomy.find_mentions(state.work[end:end + 30], facets=("category",))
                    if tail and not state.work[end:end + tail[0].start].strip():
                        end += tail[0].end
                found.append((m.start(), end, _ranks(m, kind)))
        found.sort()
        for start, end, ranks in found:
            before, after = state.work[max(0, start - 40):start], state.work[end:end + 40]
            state.references.extend(r for r in ranks if r not in state.references)
            if SIMILAR_BEFORE.search(before):
                state.similar.extend(ranks)
            elif DISLIKE_BEFORE.search(before) or DISLIKE_AFTER.search(after):
                state.dislike.extend(ranks)
            elif LIKE_BEFORE.search(before) or LIKE_AFTER.search(after):
                state.like.extend(ranks)
        for start, end, _ in sorted(found, reverse=True):
            state.work = state.work[:start] + " " + state.work[end:]
        state.change_text = state.work
        if not found and PRONOUNS.search(state.work):
            state.this = True
            if not context.has_image and re.search(r"(?:more|something|anything|similar|others?|ones?)\s+like\s+(?:this|that|it)\b|"
                         r"similar\s+to\s+(?:this|that|it)\b|^\s*like\s+(?:this|that)\b", state.work):
                state.similar.append(0)

    def _prices(self, state: "_State") -> None:
        capped = NOT_OVER.search(state.work)
        if capped:
            state.price_max = float(capped.group(1).replace(",", "."))
            state.work = state.work[:capped.start()] + " " + state.work[capped.end():]
        around = AROUND.search(state.work)
        if around:
            value = float(around.group(1).replace(",", "."))
            state.price_min, state.price_max = round(value * 0.8, 2), round(value * 1.2, 2)
            state.work = state.work[:around.start()] + " " + state.work[around.end():]
        low, high, rest = parse_price(state.work)
        if low is not None or high is not None:
            state.price_min = low if low is not None else state.price_min
            state.price_max = high if high is not None else state.price_max
            state.work = rest

    def _relative(self, state: "_State") -> None:
        for name, pattern in self.vocab.relative.items():
            match = pattern.search(state.work)
            if match and not _negated_relative(state.work, match.start()):
                state.relative.append(name)
        for name, pattern in self.vocab.relative.items():
            state.work = pattern.sub(" ", state.work) if name in state.relative else state.work
        if "cheaper" in state.relative and "pricier" in state.relative:
            state.relative.remove("pricier")

    def _facets(self, state: "_State") -> None:
        text = state.work
        mentions = list(self.taxonomy.find_mentions(text))
        taken = [(m.start, m.end) for m in mentions]
        for m in self.vocab.extra_pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            word = m.group(0)
            facet = next(f for f, words in self.vocab.extra.items() if word in words)
            mentions.append(Mention(facet, self.vocab.extra[facet][word], m.start(), m.end(), word))
            taken.append((m.start(), m.end()))
        for m in self.vocab.group_pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            mentions.append(Mention("group", self.vocab.groups[m.group(0)], m.start(), m.end(), m.group(0)))
        mentions.sort(key=lambda m: m.start)
        previous: tuple[Mention, str] | None = None
        for mention in mentions:
            before = text[max(0, mention.start - 30):mention.start]
            after = text[mention.end:mention.end + 30]
            if self.vocab.allow_before.search(before) or self.vocab.allow_after.search(after):
                kind = "allow"
            elif self.vocab.negations.search(before):
                kind = "avoid"
            elif previous and previous[1] in ("avoid", "allow") and re.fullmatch(
                    r"[\s,/]*(?:or|nor|and|,)?[\s,/]*(?:no\s+)?", text[previous[0].end:mention.start]) and not (
                    POSITIVE_AFTER.match(after) and not re.search(r"\b(?:or|nor|and)\b",
                                                                  text[previous[0].end:mention.start])):
                kind = previous[1]
            else:
                kind = "must"
            target = {"must": state.must, "avoid": state.avoid, "allow": state.allow}[kind]
            values = target.setdefault(mention.facet, [])
            if mention.value not in values:
                values.append(mention.value)
            previous = (mention, kind)
            state.spans.append((mention.start, mention.end))
        for facet, values in state.allow.items():
            if facet in state.must:
                state.must[facet] = [v for v in state.must[facet] if v not in values]
        state.must = {f: v for f, v in state.must.items() if v}
        if state.must.get("category") and "group" in state.must:
            del state.must["group"]

    def _decide(self, state: "_State", context: ParseContext) -> tuple[str, str, float]:
        for rule in DECISION_RULES:
            intent = rule(self, state, context)
            if intent:
                return intent, "rule", 1.0
        if not state.has_content():
            label, score = self.classify(state.raw) if self.use_embeddings else ("search", 0.0)
            if score >= EMBEDDING_FLOOR and label not in ("search", "refine"):
                if label in ("question", "compare", "outfit") and not (context.has_results or context.has_reference):
                    label = "help" if label == "question" else label
                if label == "describe" and not (context.has_image or context.has_reference):
                    label = "help"
                return label, "embedding", score
            if score >= EMBEDDING_FLOOR:
                return _search_or_refine(self, state, context), "embedding", score
            if not state.text or not re.search(r"[a-z]{3,}", state.text):
                return "help", "default", score
            return _search_or_refine(self, state, context), "default", score
        return _search_or_refine(self, state, context), "default", 0.0

    # ---- embeddings ---------------------------------------------------------------------------------
    def _get_encoder(self) -> Any | None:
        if self._encoder is None and self.use_embeddings:
            try:
                from atelier.tools.encoders import load_encoder

                self._encoder = load_encoder()
            except Exception as exc:  # noqa: BLE001 - the rules still work without embeddings
                log.warning("intent embeddings unavailable (%s); rules only", exc)
                self.use_embeddings = False
        return self._encoder

    def _exemplars(self) -> np.ndarray | None:
        if self._exemplar_vectors is None:
            encoder = self._get_encoder()
            if encoder is None:
                return None
            labels, texts = [], []
            for intent, phrases in self.vocab.exemplars.items():
                labels.extend([intent] * len(phrases))
                texts.extend(phrases)
            self._exemplar_labels = labels
            self._exemplar_vectors = encoder.embed_texts(texts)
        return self._exemplar_vectors


@dataclass
class _State:
    raw: str
    text: str
    work: str
    references: list[int] = None  # type: ignore[assignment]
    similar: list[int] = None  # type: ignore[assignment]
    like: list[int] = None  # type: ignore[assignment]
    dislike: list[int] = None  # type: ignore[assignment]
    relative: list[str] = None  # type: ignore[assignment]
    must: dict[str, list[str]] = None  # type: ignore[assignment]
    avoid: dict[str, list[str]] = None  # type: ignore[assignment]
    allow: dict[str, list[str]] = None  # type: ignore[assignment]
    price_min: float | None = None
    price_max: float | None = None
    this: bool = False
    show_more: bool = False
    spans: list[tuple[int, int]] = None  # type: ignore[assignment]
    change_text: str = ""

    def __post_init__(self) -> None:
        for name in ("references", "similar", "like", "dislike", "relative", "spans"):
            setattr(self, name, [])
        for name in ("must", "avoid", "allow"):
            setattr(self, name, {})

    def details_text(self) -> str:
        text = self.work
        for start, end in sorted(self.spans, reverse=True):
            text = text[:start] + " " + text[end:]
        text = NEGATED_DETAIL.sub(" ", text)
        text = NEGATION_WORDS.sub(" ", text)
        return text

    def has_content(self) -> bool:
        return bool(self.must or self.avoid or self.allow or self.relative or self.references or self.show_more
                    or self.price_min is not None or self.price_max is not None)

    def has_change(self) -> bool:
        return bool(self.must or self.avoid or self.allow or self.relative or self.price_min is not None
                    or self.price_max is not None)


# ---- decision rules, tried in order; the first that names an intent wins ------------------------------
DecisionRule = Any
DECISION_RULES: list[DecisionRule] = []


def decision(rule: DecisionRule) -> DecisionRule:
    DECISION_RULES.append(rule)
    return rule


@decision
def rule_start_over(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    return "start_over" if parser.vocab.rules["start_over"].search(s.text) else None


@decision
def rule_compare(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if parser.vocab.rules["compare"].search(s.text) and (c.has_results or len(s.references) >= 2):
        return "compare"
    if re.search(r"\bwhich\b.*\b(?:better|cheaper|warmer|nicer|more|less)\b", s.text) and len(s.references) >= 2:
        return "compare"
    if c.has_results and re.search(r"\b(?:differ|different|difference|better|prefer)\b", s.text) and re.search(
            r"\b(?:these two|those two|the two|both|them|between)\b", s.text):
        return "compare"
    return None


def asks_listing_property(text: str) -> bool:
    """ "What is this made of?" asks a property only a listing states (material, care, price, size: the question
    types of ``prompts/vqa.yaml`` with no visual attribute), so it is a product question, not "what is this?"."""
    from atelier.tools.vqa import load_vqa_config

    types = load_vqa_config().types.values()
    return any(rule.search(text) for t in types if t.visual is None for rule in t.rules)


@decision
def rule_describe(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if not (c.has_image or (c.has_reference and not s.references)):
        return None
    if parser.vocab.rules["describe"].search(s.text) and not s.references and not asks_listing_property(s.text):
        return "describe" if c.has_image or PRONOUNS.search(s.text) else None
    return None


@decision
def rule_outfit(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if parser.vocab.rules["outfit"].search(s.text):
        return "outfit"
    if (c.has_results or c.has_image or c.has_reference) and OUTFIT_SPLIT.search(s.text):
        return "outfit"
    return None


@decision
def rule_question(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    asks = s.raw.rstrip().endswith("?") or bool(parser.vocab.question_openers.search(s.text))
    if not asks or parser.vocab.request_openers.search(s.text) or s.show_more:
        return None
    about_product = bool(s.references) or s.this or bool(PRODUCT_PARTS.search(s.text))
    if not about_product or not (c.has_results or c.has_image or c.has_reference or s.references):
        return None
    if s.must.get("category") or s.must.get("group") or s.relative or s.similar:
        return None
    if re.search(r"\b(?:in|come\s+in|available\s+in|also\s+in|get\s+it\s+in|have\s+it\s+in)\s*$",
                 s.text[:_first_facet_index(s)]) and s.has_change():
        return None
    return "question"


@decision
def rule_composed(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if c.has_image and (s.has_change() or not s.text or s.similar or s.this or re.search(
            r"\b(?:similar|like\s+this|like\s+that|find\s+(?:this|it|one)|same)\b", s.text)):
        return "composed"
    referenced = s.similar or (s.references and not s.like and not s.dislike)
    if referenced and (s.has_change() or (s.similar and _content(_tidy(s.change_text)))):
        return "composed"
    if s.this and s.similar and s.has_change() and c.has_reference:
        return "composed"
    if c.photo_in_focus and (s.this or s.similar) and s.has_change():
        return "composed"
    return None


@decision
def rule_help(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if s.has_content():
        return None
    if parser.vocab.rules["help"].search(s.text):
        return "help"
    rest = parser.vocab.rules["chit_chat"].sub(" ", re.sub(r"[^a-z' ]", " ", s.text)).split()
    if s.text and all(w in CHAT_FILLER for w in rest):
        return "help"
    return None


@decision
def rule_feedback_only(parser: TurnParser, s: _State, c: ParseContext) -> str | None:
    if (s.like or s.dislike or s.similar or s.show_more) and c.has_results:
        return "refine"
    return None


def _search_or_refine(parser: TurnParser, s: _State, c: ParseContext) -> str:
    """A new topic starts a search; anything that adjusts the current one is a refinement."""
    if not c.has_results and not c.has_reference:
        return "search"
    named = set(s.must.get("category", [])) | set(s.must.get("group", []))
    current = set(c.category) | set(c.group)
    if named and not (named & current) and not parser.vocab.refine_openers.search(s.text):
        if not (c.group and not c.category and _groups_of(parser, named) <= set(c.group)):
            return "search"
    return "refine"


def _groups_of(parser: TurnParser, values: set[str]) -> set[str]:
    return {parser.taxonomy.group_of(v) if v in parser.taxonomy.category_group else v for v in values}


def _first_facet_index(s: _State) -> int:
    for facet_values in (s.must, s.avoid):
        for values in facet_values.values():
            for value in values:
                index = s.text.find(value)
                if index >= 0:
                    return index
    return len(s.text)


def _ranks(match: re.Match[str], kind: str) -> list[int]:
    text = match.group(0)
    if kind == "first_n":
        n = 3 if re.search(r"\b(?:three|3)\b", text) else 2
        return list(range(1, n + 1)) if "last" not in text else list(range(-n, 0))
    if kind == "ordinal":
        return [ORDINALS[match.group("o")]]
    if kind == "number":
        return [int(match.group("n"))]
    if kind == "word":
        return [NUMBER_WORDS[match.group("w")]]
    return [1]


def _fill_pair(references: list[int], context: ParseContext) -> list[int]:
    """"Compare them" / "which is cheaper?" without ranks: the first two shown (or the one named + the first)."""
    refs = list(references)
    for rank in (1, 2, 3):
        if len(refs) >= 2:
            break
        if rank not in refs:
            refs.append(rank)
    return refs[:2]


def _negated_relative(text: str, start: int) -> bool:
    return bool(re.search(r"\b(?:not|no|isn't|don't|doesn't)\s+(?:need\s+to\s+be\s+|be\s+)?(?:any\s+)?$",
                          text[max(0, start - 25):start]))


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


def _tidy(text: str) -> str:
    text = re.sub(r"^\s*(?:(?:more|something|anything|show me|find|just)\s+)*(?:like|similar to)\b", " ", text)
    text = re.sub(r"^[\s,]*(?:but|and|only|just)\b", " ", text)
    return re.sub(r"\s+([,.!?])", r"\1", re.sub(r"\s+", " ", text)).strip(" ,")


def _content(work: str) -> str:
    """The descriptive words of a message (the text the memory cascade embeds)."""
    text = re.sub(r"[^\w\s'&/-]", " ", work)
    text = FILLER.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


_default_parser: TurnParser | None = None


def get_parser() -> TurnParser:
    global _default_parser
    if _default_parser is None:
        _default_parser = TurnParser()
    return _default_parser


def parse_turn(text: str, context: ParseContext | None = None) -> TurnIntent:
    """Parse one message with the shared parser (see ``TurnParser``)."""
    return get_parser().parse(text, context)
