"""The turn parser: extract what a message says, decide what it asks with the ordered rules, and fall back to
exemplar similarity only when no rule decides (see the package docstring)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from atelier.assistant.parser import extract, rules
from atelier.assistant.parser.classify import EMBEDDING_FLOOR, ExemplarClassifier
from atelier.assistant.parser.extract import ParseState
from atelier.assistant.parser.spelling import SpellingCorrector, known_words
from atelier.assistant.parser.vocabulary import Vocabulary, get_vocabulary, spelling_targets
from atelier.memory.intent import ParseContext, TurnIntent
from atelier.tools.settings import Settings, get_settings
from atelier.tools.taxonomy import Taxonomy, get_taxonomy


class Parser(Protocol):
    """What the agent needs of a parser (``TurnParser``, or ``LLMTurnParser`` over it)."""

    def parse(self, text: str, context: ParseContext | None = None) -> TurnIntent: ...


class TurnParser:
    """Rules and vocabulary first, embedding similarity against intent exemplars for the rest."""

    def __init__(self, encoder: Any | None = None, taxonomy: Taxonomy | None = None,
                 vocabulary: Vocabulary | None = None, use_embeddings: bool = True) -> None:
        self.taxonomy = taxonomy or get_taxonomy()
        self.vocab = vocabulary or get_vocabulary()
        self.classifier = ExemplarClassifier(self.vocab.exemplars, encoder, enabled=use_embeddings)
        surfaces = [w for facet in self.taxonomy.synonyms.values() for w in facet]
        self.speller = SpellingCorrector(spelling_targets(surfaces), known_words(), self.vocab.shorthand)

    @property
    def use_embeddings(self) -> bool:
        return self.classifier.enabled

    def parse(self, text: str, context: ParseContext | None = None) -> TurnIntent:
        context = context or ParseContext()
        raw = (text or "").strip()
        low, _ = self.speller.correct(extract.normalise(raw))
        state = ParseState(raw=raw, text=low, work=low, vocab=self.vocab)
        extract.find_references(state, context, self.taxonomy)
        extract.find_prices(state)
        extract.find_relative(state)
        extract.find_show_more(state)
        extract.find_facets(state, self.taxonomy)
        intent, source, score = self._decide(state, context)
        if intent not in ("search", "refine", "composed"):
            state.relative = []
        if intent == "compare":
            state.price_min = state.price_max = None
            state.references = rules.compared_ranks(state, context)
        return TurnIntent(
            intent=intent, text=raw, details=extract.content(state.details_text(), self.vocab),
            change=extract.tidy(state.change_text, self.vocab), must=state.must, avoid=state.avoid,
            allow=state.allow, price_min=state.price_min, price_max=state.price_max, relative=state.relative,
            references=state.references, similar=state.similar, like=state.like, dislike=state.dislike,
            this=state.this, show_more=state.show_more, new_topic=intent == "search" and context.has_results,
            question=raw if intent in ("question", "describe") else None, source=source, score=round(score, 4))

    def classify(self, text: str) -> tuple[str, float]:
        """Nearest intent by exemplar similarity, with its cosine (("search", 0.0) without an encoder)."""
        return self.classifier.classify(text)

    def _decide(self, state: ParseState, context: ParseContext) -> tuple[str, str, float]:
        intent = rules.decide(state, context)
        if intent:
            return intent, "rule", 1.0
        if state.has_content():
            return rules.search_or_refine(state, context, self.taxonomy), "default", 0.0
        label, score = self.classify(state.raw) if self.use_embeddings else ("search", 0.0)
        if score >= EMBEDDING_FLOOR and label not in ("search", "refine"):
            if label in ("question", "compare", "outfit") and not (context.has_results or context.has_reference):
                label = "help" if label == "question" else label
            if label == "describe" and not (context.has_image or context.has_reference):
                label = "help"
            return label, "embedding", score
        if score >= EMBEDDING_FLOOR:
            return rules.search_or_refine(state, context, self.taxonomy), "embedding", score
        if not state.text or not re.search(r"[a-z]{3,}", state.text):
            return "help", "default", score
        return rules.search_or_refine(state, context, self.taxonomy), "default", score


def build_parser(settings: Settings | None = None) -> Parser:
    """The rules, or the LLM parser over them with ``ATELIER_PARSER=llm`` and ``ATELIER_LLM=openai``."""
    settings = settings or get_settings()
    rules = TurnParser()
    if settings.parser == "llm" and settings.llm == "openai":
        from atelier.assistant.parser.llm import LLMTurnParser

        return LLMTurnParser(fallback=rules, settings=settings)
    return rules


_default_parser: Parser | None = None


def get_parser() -> Parser:
    """The process-wide parser for code without a ``Runtime`` (``build_parser`` of the active settings)."""
    global _default_parser
    if _default_parser is None:
        _default_parser = build_parser()
    return _default_parser


def parse_turn(text: str, context: ParseContext | None = None) -> TurnIntent:
    """Parse one message with the shared parser (see ``TurnParser``)."""
    return get_parser().parse(text, context)
