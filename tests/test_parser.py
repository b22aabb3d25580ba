"""The deterministic turn parser: specific behaviours, and per-field accuracy on tests/data/utterances.yaml."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from atelier.assistant.parser import ParseContext, TurnIntent, TurnParser

DATA = Path(__file__).parent / "data" / "utterances.yaml"
FIELDS = {"intent": None, "must": {}, "avoid": {}, "allow": {}, "price_min": None, "price_max": None, "relative": [],
          "references": [], "similar": [], "like": [], "dislike": []}
SHOWN = ParseContext(has_results=True, n_shown=10, category=["dress"])
RULES = TurnParser(use_embeddings=False)


def field_matches(field: str, expected, got) -> bool:
    if field in ("must", "avoid", "allow"):
        return {k: sorted(v) for k, v in expected.items()} == {k: sorted(v) for k, v in got.items()}
    if field == "relative":
        return sorted(expected) == sorted(got)
    if field in ("price_min", "price_max") and expected is not None and got is not None:
        return abs(float(expected) - float(got)) < 1e-6
    return expected == got


def accuracy(parser: TurnParser, section: str = "utterances") -> tuple[dict[str, float], list[str]]:
    data = yaml.safe_load(DATA.read_text())
    contexts = {name: ParseContext(**spec) for name, spec in data["contexts"].items()}
    hits: Counter[str] = Counter()
    misses: list[str] = []
    rows = data[section]
    for row in rows:
        parsed = parser.parse(row["text"], contexts[row["context"]])
        for field, default in FIELDS.items():
            if field_matches(field, row.get(field, default), getattr(parsed, field)):
                hits[field] += 1
            else:
                misses.append(f"{row['text']!r} {field}: want {row.get(field, default)} got {getattr(parsed, field)}")
    return {f: hits[f] / len(rows) for f in FIELDS}, misses


def test_utterance_file_is_big_and_covers_every_intent():
    data = yaml.safe_load(DATA.read_text())
    assert len(data["utterances"]) >= 150
    from atelier.assistant.parser import INTENTS

    assert {row["intent"] for row in data["utterances"]} == set(INTENTS)


# Bars set a little under the measured accuracy (see docs/agent.md): rules alone, then rules + embeddings.
RULE_BARS = {"intent": 0.95, "must": 0.97, "avoid": 0.97, "allow": 0.97, "price_min": 0.97, "price_max": 0.97,
             "relative": 0.97, "references": 0.97, "similar": 0.97, "like": 0.97, "dislike": 0.97}


def test_rule_parser_accuracy_per_field():
    scores, misses = accuracy(RULES)
    low = {f: round(s, 3) for f, s in scores.items() if s < RULE_BARS[f]}
    assert not low, (low, misses)


def test_rule_parser_generalises_to_held_out_utterances():
    scores, misses = accuracy(RULES, "held_out")
    low = {f: round(s, 3) for f, s in scores.items() if s < 0.9}
    assert not low, (low, misses)


def parse(text: str, context: ParseContext = SHOWN) -> TurnIntent:
    return RULES.parse(text, context)


def test_constraints_prices_and_negations():
    p = parse("a red or pink dress between 20 and 30, no stripes or dots", ParseContext())
    assert p.intent == "search"
    assert p.must == {"colour": ["red", "pink"], "category": ["dress"]}
    assert p.avoid == {"pattern": ["striped", "dotted"]}
    assert (p.price_min, p.price_max) == (20, 30)
    assert parse("black is fine").allow == {"colour": ["black"]}
    assert parse("around 50").price_min == 40 and parse("around 50").price_max == 60


def test_references_are_not_mistaken_for_categories():
    p = parse("I like the top one")
    assert p.like == [1] and "category" not in p.must
    p = parse("help me build an outfit around the second dress")
    assert p.intent == "outfit" and p.references == [2] and p.must == {}


def test_details_keep_descriptive_words_but_not_facets_or_negations():
    p = parse("a red dress with long sleeves for a party, not black", ParseContext())
    assert p.details == "long sleeves party"
    assert "black" not in p.details and "red" not in p.details


def test_new_topic_versus_refinement():
    assert parse("now I need a black coat").intent == "search"
    assert parse("now I need a black coat").new_topic
    assert parse("what about a jumpsuit").intent == "refine"
    assert parse("in blue").intent == "refine"
    assert parse("a blue dress").intent == "refine"
    assert parse("a blue dress", ParseContext()).intent == "search"


def test_composed_change_text_drops_the_reference():
    p = parse("like the second one but in red")
    assert p.intent == "composed" and p.similar == [2] and p.change == "in red"
    photo = parse("like this but without the print", ParseContext(has_image=True))
    assert photo.intent == "composed" and photo.avoid == {"pattern": ["print"]} and photo.similar == []


def test_questions_versus_requests():
    assert parse("is the second one machine washable?").intent == "question"
    assert parse("do you have it in black?").intent != "question"
    assert parse("do you have black boots?", ParseContext()).intent == "search"
    assert parse("what colour is this?", ParseContext(has_image=True)).intent == "describe"


VARIANT_ASKS = ["got this with stripes?", "do you have this in stripes?", "do you have it in black?",
                "got it with long sleeves?", "same but in green", "any striped version?", "any plain version of this?",
                "is there a long-sleeved version?", "do you have this in a longer length?"]
IN_VIEW = {"upload": ParseContext(has_image=True),
           "photo in focus": ParseContext(photo_in_focus=True, has_results=True, n_shown=10),
           "product in focus": ParseContext(has_reference=True, has_results=True, n_shown=10, category=["dress"])}


@pytest.mark.parametrize("view", IN_VIEW)
@pytest.mark.parametrize("text", VARIANT_ASKS)
def test_asking_for_the_item_in_view_in_another_variant_is_composed(text, view):
    assert RULES.parse(text, IN_VIEW[view]).intent == "composed"


def test_variant_asks_keep_their_change_and_questions_stay_questions():
    photo = IN_VIEW["upload"]
    assert RULES.parse("got this with stripes?", photo).must == {"pattern": ["striped"]}
    for text in ("what is it made of?", "does it come in other colours?", "is this in stock?"):
        assert RULES.parse(text, photo).intent == "question", text
    assert RULES.parse("do you have this in stripes?", ParseContext()).intent != "composed"  # nothing in view


@pytest.mark.parametrize("text", ["", "   ", "?!", "ok"])
def test_degenerate_messages_do_not_crash(text):
    assert parse(text).intent in ("help", "refine", "search")


def test_parser_with_intent_embeddings_keeps_the_accuracy():
    """The default parser (rules + MiniLM exemplar similarity through ``load_encoder``)."""
    parser = TurnParser()
    scores, misses = accuracy(parser)
    low = {f: round(s, 3) for f, s in scores.items() if s < RULE_BARS[f]}
    assert not low, (low, misses)
    assert parser.classify("let's start again from the beginning")[0] == "start_over"
    assert parser.classify("what would look good with this")[0] == "outfit"
