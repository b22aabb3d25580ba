"""Shoppers as they really write (issue 15): typos, every negation form, preference verbs, ages, group words, vest
tops; the wild corpus (tests/data/wild_utterances.yaml) per field; the spelling guard; the optional LLM parser
against the fake OpenAI server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_fixtures import dead_url, fake_openai, fake_openai_session  # noqa: F401

from atelier.assistant.parser import ParseContext, TurnParser
from atelier.assistant.parser.corpus import Corpus, score
from atelier.tools.composed import Reference, parse_change
from atelier.tools.query_parser import parse_query

WILD = Path(__file__).parent / "data" / "wild_utterances.yaml"
RULES = TurnParser(use_embeddings=False)
FRESH = ParseContext()
TOPS_RED = ParseContext(has_results=True, n_shown=10, category=["top"])


def parse(text: str, context: ParseContext = FRESH):
    return RULES.parse(text, context)


def test_the_wild_corpus_is_big_split_two_to_one_and_tagged():
    dev, held_out = Corpus.load(WILD, split="dev"), Corpus.load(WILD, split="held_out")
    assert len(dev.rows) + len(held_out.rows) >= 300
    assert abs(len(dev.rows) - 2 * len(held_out.rows)) <= 2
    tags = {t for r in dev.rows + held_out.rows for t in r["tags"]}
    assert {"typo", "negation", "or_list", "preference", "family", "group", "vest", "texting", "rambling",
            "british_american", "correction"} <= tags


def test_the_wild_conversations_load_and_split_two_to_one():
    from atelier.assistant.replay import load_conversation

    root = Path(__file__).parent / "conversations" / "wild"
    dev, held_out = sorted((root / "dev").glob("*.yaml")), sorted((root / "held_out").glob("*.yaml"))
    assert len(dev) + len(held_out) >= 20 and len(dev) == 2 * len(held_out)
    turns = [t for p in dev + held_out for t in load_conversation(p).turns]
    assert all(t.say and t.expect.memory is not None for t in turns)


# Bars a little under the measured accuracy (docs/agent.md): the held-out target of issue 15 is 0.95 per field.
@pytest.mark.parametrize("split,bar", [("dev", 0.97), ("held_out", 0.95)])
def test_wild_corpus_accuracy_per_field(split, bar):
    result = score(RULES, Corpus.load(WILD, split=split))
    low = {f: round(v, 3) for f, v in result.fields.items() if v < bar}
    assert not low, (low, result.misses if split == "dev" else "held-out misses are not listed")


@pytest.mark.parametrize("text,must,avoid", [
    ("a jacket that isn't black or blue", {"category": ["jacket"]}, {"colour": ["black", "blue"]}),
    ("i dont want anything black, just a dress", {"category": ["dress"]}, {"colour": ["black"]}),
    ("a blak dres", {"colour": ["black"], "category": ["dress"]}, {}),
    ("stripped shirt", {"pattern": ["striped"], "category": ["shirt"]}, {}),
    ("grey hoody", {"colour": ["grey"], "category": ["hoodie"]}, {}),
    ("clothes for a 5 year old girl", {"gender": ["kids"]}, {}),
    ("vest tops", {"category": ["top"]}, {}),
    ("grey suit vest", {"colour": ["grey"], "category": ["waistcoat"]}, {}),
    ("swimwear for the holidays", {"group": ["swimwear"]}, {}),
    ("some knitwear", {"category": ["sweater", "cardigan"]}, {}),
    ("neither black nor white", {}, {"colour": ["black", "white"]}),
    ("won't wear anything yellow", {}, {"colour": ["yellow"]}),
    ("a red, no wait, a blue dress", {"colour": ["blue"], "category": ["dress"]}, {}),
    ("red but not dark red", {"colour": ["red"]}, {}),
    ("doesn't have to be black", {}, {}),
])
def test_the_issue_cases(text, must, avoid):
    got = parse(text)
    assert (got.must, got.avoid) == (must, avoid)


def test_a_preference_verb_replaces_the_colour_and_is_never_a_comparison_or_an_outfit():
    prefer = parse("I prefer them in white actually", TOPS_RED)
    assert (prefer.intent, prefer.must, prefer.references) == ("refine", {"colour": ["white"]}, [])
    go_with = parse("let's go with navy", TOPS_RED)
    assert (go_with.intent, go_with.must) == ("refine", {"colour": ["navy"]})
    assert parse("what goes with these black jeans", TOPS_RED).intent == "outfit"


def test_typos_of_feedback_words_and_texting_shorthand():
    assert parse("somthing cheapr", TOPS_RED).relative == ["cheaper"]
    assert parse("k thx", TOPS_RED).intent == "help"
    assert parse("need a coat, 60 max").price_max == 60
    assert parse("hiya need a dress 4 a wedding").relative == ["more_formal"]


def test_the_spelling_guard_leaves_real_words_alone():
    speller = RULES.speller
    for word in ("sick", "sweeter", "wedding", "holidays", "daughter", "socks"):
        assert speller.correct_word(word) is None, word
    assert speller.correct("sick of socks")[0] == "sick of socks"
    assert speller.correct("a blak dres")[1] == [("blak", "black"), ("dres", "dress")]


def test_query_parser_and_composed_search_read_the_same_negations():
    assert parse_query("a jacket that isn't black").filters.avoid == {"colour": ["black"]}
    change = parse_change("same but dont want it in red", Reference(attributes={"colour": "blue"}, price=30.0))
    assert change.filters.avoid == {"colour": ["red"]}
    assert parse_change("cheapest version", Reference(price=30.0)).filters.price_max == pytest.approx(29.1)


# ---- the optional LLM parser ----------------------------------------------------------------------------------

def llm_parser(base_url: str):
    from atelier.assistant.parser.llm import LLMTurnParser
    from atelier.tools.settings import Settings

    settings = Settings(llm="openai", llm_base_url=base_url, llm_model="fake-model", parser="llm")
    return LLMTurnParser(fallback=RULES, settings=settings)


def reading(**fields):
    empty = {"category": [], "group": [], "colour": [], "pattern": [], "gender": []}
    base = {"intent": "search", "must": dict(empty), "avoid": dict(empty), "allow": dict(empty), "price_min": None,
            "price_max": None, "relative": [], "references": [], "similar": [], "like": [], "dislike": [],
            "show_more": False}
    return json.dumps({**base, **fields})


def test_llm_parser_fills_the_turn_intent_from_structured_output(fake_openai):
    parser = llm_parser(fake_openai.base_url)
    fake_openai.replies.append(reading(intent="refine", must={"category": [], "group": [], "colour": ["white"],
                                                              "pattern": [], "gender": []}))
    got = parser.parse("i'd fancy them in a snowy shade", TOPS_RED)
    assert (got.source, got.intent, got.must) == ("llm", "refine", {"colour": ["white"]})
    request = fake_openai.requests[-1]
    schema = request["response_format"]["json_schema"]["schema"]
    assert request["response_format"]["type"] == "json_schema" and request["temperature"] == 0
    assert "white" in schema["properties"]["must"]["properties"]["colour"]["items"]["enum"]
    assert request["messages"][-1] == {"role": "user", "content": "i'd fancy them in a snowy shade"}


@pytest.mark.parametrize("answer", ["not json at all", reading(intent="shopping"),
                                    reading(must={"colour": ["ultraviolet"]})])
def test_llm_parser_falls_back_to_the_rules_on_an_invalid_answer(fake_openai, answer):
    parser = llm_parser(fake_openai.base_url)
    fake_openai.replies.append(answer)
    got = parser.parse("a jacket that isn't black or blue")
    assert got.source != "llm" and got.avoid == {"colour": ["black", "blue"]}
    assert parser.failures == 1


def test_llm_parser_falls_back_when_the_endpoint_is_down(dead_url):
    parser = llm_parser(dead_url)
    got = parser.parse("a blak dres")
    assert got.source != "llm" and got.must == {"colour": ["black"], "category": ["dress"]}
