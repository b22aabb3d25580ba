"""Cascaded memory: overrides, relative feedback, references, dislikes, start over, composition, SQLite."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from atelier.assistant.parser import ParseContext, TurnParser
from atelier.memory import (Anchor, CascadeWeights, SessionMemory, SessionNotFound, SessionStore, ShownItem, TurnRecord,
    apply_feedback, apply_turn, compose_query, describe_constraints, rerank)
from atelier.memory.relative import formality, length, lightness
from atelier.tools.schema import Product, SearchResult

PARSER = TurnParser(use_embeddings=False)


def say(memory: SessionMemory, text: str, **kw):
    must = memory.constraints.must
    context = ParseContext(has_results=bool(memory.shown), n_shown=len(memory.shown),
                           has_reference=bool(memory.anchors), category=must.get("category", []),
                           group=must.get("group", []), **kw)
    intent = PARSER.parse(text, context)
    return intent, apply_turn(memory, intent)


def show(memory: SessionMemory, prices: list[float], prefix: str = "p") -> None:
    memory.shown = [ShownItem(id=f"{prefix}{i}", title=f"Item {i}", price=p, colour="red", category="dress")
                    for i, p in enumerate(prices, start=1)]


def test_later_colour_overrides_only_the_colour():
    m = SessionMemory(session_id="s")
    say(m, "a red dress under 40")
    show(m, [20, 30])
    say(m, "actually blue")
    assert m.constraints.must == {"colour": ["blue"], "category": ["dress"]}
    assert m.constraints.price_max == 40


def test_exclusion_then_allowed_again():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [20, 30])
    say(m, "not black, no stripes")
    assert m.constraints.avoid == {"colour": ["black"], "pattern": ["striped"]}
    say(m, "black is fine")
    assert m.constraints.avoid == {"pattern": ["striped"]}
    assert "colour" not in m.constraints.must


def test_exclusion_removes_a_wanted_value():
    m = SessionMemory(session_id="s")
    say(m, "a red or black dress")
    show(m, [10])
    say(m, "not black")
    assert m.constraints.must["colour"] == ["red"]
    assert m.filters().avoid == {"colour": ["black"]}


def test_cheaper_goes_below_the_results_median_price():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [10.0, 30.0, 50.0])
    intent, _ = say(m, "cheaper")
    assert intent.relative == ["cheaper"]
    assert m.constraints.price_max == pytest.approx(27.0)


def test_cheaper_than_a_referenced_product_uses_its_price():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [10.0, 40.0, 50.0])
    intent, update = say(m, "like the second one but cheaper")
    assert intent.intent == "composed"
    assert update.similar == ["p2"]
    assert m.constraints.price_max == pytest.approx(36.0)
    assert m.anchors[-1].id == "p2" and m.anchors[-1].role == "reference"


def test_cheaper_is_below_the_top_match_when_it_costs_more_than_the_median():
    m = SessionMemory(session_id="s")
    say(m, "a shirt")
    show(m, [50.0, 20.0, 22.0, 25.0])
    say(m, "cheaper")
    assert m.constraints.price_max == pytest.approx(45.0)  # not 0.9 x median 23.5: the top match was 50


def test_cheaper_after_more_expensive_drops_the_floor():
    m = SessionMemory(session_id="s")
    say(m, "a skirt")
    show(m, [20.0, 20.0])
    say(m, "more expensive")
    assert m.constraints.price_min == pytest.approx(22.22)
    show(m, [40.0, 30.0, 25.0])
    say(m, "cheaper")
    assert m.constraints.price_min is None and m.constraints.price_max == pytest.approx(36.0)


def test_pricier_raises_the_floor_and_drops_a_lower_ceiling():
    m = SessionMemory(session_id="s")
    say(m, "a dress under 30")
    show(m, [27.0, 27.0])
    say(m, "more expensive")
    assert m.constraints.price_min == pytest.approx(30.0)
    assert m.constraints.price_max is None


def test_soft_preferences_replace_their_opposite():
    m = SessionMemory(session_id="s")
    say(m, "a skirt")
    show(m, [10])
    say(m, "longer and darker")
    assert m.preferences == ["longer", "darker"]
    say(m, "hmm, shorter")
    assert m.preferences == ["darker", "shorter"]


def test_gender_switch_replaces_gender_and_keeps_the_rest():
    m = SessionMemory(session_id="s")
    say(m, "a black hoodie for women")
    show(m, [10])
    say(m, "for men instead")
    assert m.constraints.must == {"colour": ["black"], "category": ["hoodie"], "gender": ["men"]}


def test_references_resolve_to_last_shown_ids():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [10, 20, 30])
    _, update = say(m, "more like the first")
    assert update.similar == ["p1"] and m.focus == "p1"
    _, update = say(m, "I like the last one")
    assert update.liked == ["p3"] and "p3" in m.liked
    _, update = say(m, "more like the fifth one")
    assert update.unresolved == [5]


def test_dislikes_are_excluded_and_survive_start_over():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [10, 20, 30])
    say(m, "I don't like the second one")
    assert "p2" in m.filters().exclude_ids
    say(m, "start over")
    assert m.constraints.is_empty() and not m.anchors and not m.shown
    assert m.filters().exclude_ids == ["p2"]


def test_feedback_clicks():
    m = SessionMemory(session_id="s")
    show(m, [10, 20, 30])
    apply_feedback(m, "p1", "like")
    apply_feedback(m, "p3", "dislike")
    apply_feedback(m, "p2", "more_like_this")
    assert m.liked == ["p1"] and m.disliked == ["p3"] and m.focus == "p2"
    assert [(a.id, a.role) for a in m.anchors] == [("p1", "liked"), ("p2", "reference")]
    apply_feedback(m, "p1", "dislike")
    assert "p1" not in m.liked and all(a.id != "p1" for a in m.anchors)


def test_show_more_dismisses_what_was_shown():
    m = SessionMemory(session_id="s")
    say(m, "a dress")
    show(m, [10, 20])
    say(m, "show me more")
    assert set(m.filters().exclude_ids) == {"p1", "p2"}


def test_new_topic_keeps_gender_only():
    m = SessionMemory(session_id="s")
    say(m, "a red dress for women under 40")
    show(m, [10])
    say(m, "I like the first one")
    intent, _ = say(m, "now I need shoes")
    assert intent.intent == "search" and intent.new_topic
    assert m.constraints.must == {"gender": ["women"], "group": ["shoes"]}
    assert m.constraints.price_max is None and not m.anchors and m.liked == ["p1"]


def test_describe_constraints():
    m = SessionMemory(session_id="s")
    say(m, "blue or navy striped dress for women")
    assert describe_constraints(m.constraints) == "blue or navy striped dress for women"


TEXT_DIMS = (0, 1, 2, 4, 6, 7)


def fake_embed(texts: list[str]) -> np.ndarray:
    """Words hashed into dimensions 0-2, 4, 6, 7 (3 and 5 are left to the product vectors below)."""
    out = np.zeros((len(texts), 8), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.split():
            out[i, TEXT_DIMS[zlib.crc32(word.encode()) % len(TEXT_DIMS)]] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_compose_cascade_weights_decay_and_include_anchors():
    m = SessionMemory(session_id="s")
    say(m, "a dress with long sleeves")
    show(m, [10, 20])
    say(m, "for a party")
    say(m, "more like the second one")
    vectors = {"p2": np.eye(8, dtype=np.float32)[3], "p9": np.eye(8, dtype=np.float32)[5]}
    m.disliked.append("p9")
    q = compose_query(m, fake_embed, lambda ids: {i: vectors[i] for i in ids if i in vectors},
                      weights=CascadeWeights())
    sources = [(c["source"], c.get("turn"), c["weight"]) for c in q.components]
    assert sources[0] == ("constraints", None, 1.0)
    details = [c for c in q.components if c["source"] == "details"]
    assert [d["text"] for d in details] == ["long sleeves", "party"]
    assert details[0]["weight"] == pytest.approx(0.6 * 0.6 ** 2)
    assert details[1]["weight"] == pytest.approx(0.6 * 0.6 ** 1)
    assert any(c["source"] == "reference" and c["id"] == "p2" and c["weight"] == 1.0 for c in q.components)
    assert any(c["source"] == "disliked" and c["id"] == "p9" for c in q.components)
    assert q.vector is not None and np.linalg.norm(q.vector) == pytest.approx(1.0, abs=1e-5)
    assert q.vector[3] > 0.3 and q.vector[5] < 0
    assert q.text.startswith("dress")


def test_overridden_colour_never_reaches_the_query_text():
    m = SessionMemory(session_id="s")
    say(m, "a red dress")
    show(m, [10])
    say(m, "actually green")
    q = compose_query(m, fake_embed)
    assert "red" not in q.text and "green" in q.text
    assert all("red" not in c.get("text", "") for c in q.components)


def product(pid: str, **kw) -> Product:
    return Product(id=pid, title=kw.pop("title", pid), **kw)


def test_relative_scorers_on_real_attribute_names():
    dark = product("a", colour="navy", attributes={"perceived_colour_value_name": "Dark"})
    light = product("b", colour="beige", attributes={"perceived_colour_value_name": "Light"})
    assert lightness(dark) < lightness(light)
    assert length(product("c", description="Long dress in woven fabric with short sleeves.")) == 1
    assert length(product("d", description="Short dress with long sleeves.")) == -1
    blazer = product("e", category="blazer", description="Fitted jacket in woven fabric with notch lapels.",
                     attributes={"section_name": "Womens Tailoring"})
    hoodie = product("f", category="hoodie", description="Top in sweatshirt fabric with a lined drawstring hood.",
                     attributes={"section_name": "Divided Basics"})
    assert formality(blazer) > formality(hoodie) + 0.5


def test_rerank_prefers_darker_than_the_reference_but_keeps_relevance():
    ref = product("r", colour="blue", attributes={"perceived_colour_value_name": "Medium"})
    items = [product("light", colour="white", attributes={"perceived_colour_value_name": "Light"}),
             product("dark", colour="black", attributes={"perceived_colour_value_name": "Dark"}),
             product("mid", colour="blue", attributes={"perceived_colour_value_name": "Medium"})]
    results = [SearchResult.from_product(p, 1.0, "") for p in items]
    ranked = rerank(results, ["darker"], ref, k=3)
    assert [r.id for r in ranked][0] == "dark"
    assert [r.id for r in rerank(results, [], ref, k=2)] == ["light", "dark"]


def test_session_store_roundtrip_and_unknown_session(tmp_path):
    store = SessionStore(tmp_path / "a.db")
    m = store.create()
    m.constraints.must["colour"] = ["red"]
    m.anchors.append(Anchor(kind="product", id="x", turn=1))
    store.save(m)
    store.log(TurnRecord(session_id=m.session_id, turn=1, message="a red dress", intent={"intent": "search"},
                         tool_calls=[{"name": "search_products", "args": {"query": "red dress"}}],
                         result_ids=["1", "2"], reply="Here are 2"))
    again = SessionStore(tmp_path / "a.db")
    assert again.load(m.session_id).constraints.must == {"colour": ["red"]}
    turns = again.turns(m.session_id)
    assert turns[0].result_ids == ["1", "2"] and turns[0].tool_calls[0]["name"] == "search_products"
    with pytest.raises(SessionNotFound):
        again.turns("nope")
    with pytest.raises(SessionNotFound):
        again.load("nope")
    assert again.get_or_create("fresh-id").session_id == "fresh-id"
    assert {s["id"] for s in again.sessions()} == {m.session_id, "fresh-id"}


def test_forget_item_removes_exactly_one_thing():
    from atelier.memory import Detail, ForgetError, NotRemembered, forget_item

    m = SessionMemory(session_id="s")
    say(m, "a black dress, not striped, between 20 and 40")
    m.preferences = ["darker"]
    m.details = [Detail(turn=1, text="long sleeves"), Detail(turn=2, text="party")]
    m.anchors = [Anchor(kind="product", id="p1", turn=1, title="Dress 1"),
                 Anchor(kind="image", id="img", turn=2, title="your photo")]
    m.focus, m.image, m.liked = "p1", "img", ["p1"]
    before = m.model_copy(deep=True)

    forget_item(m, "must", "colour", "black")
    assert m.constraints.must == {"category": ["dress"]}
    forget_item(m, "avoid", "pattern")
    forget_item(m, "price_min", value=20)
    forget_item(m, "preference", value="darker")
    forget_item(m, "detail", value="long sleeves")
    forget_item(m, "anchor", value="p1")
    assert m.constraints.avoid == {} and m.constraints.price_min is None and m.constraints.price_max == 40
    assert m.preferences == [] and [d.text for d in m.details] == ["party"]
    assert [a.id for a in m.anchors] == ["img"] and m.focus is None and m.liked == ["p1"] and m.image == "img"
    forget_item(m, "anchor", value="img")
    assert m.anchors == [] and m.image is None
    assert m.shown == before.shown and m.disliked == before.disliked and m.turn == before.turn

    for kind, facet, value in (("must", "colour", "black"), ("avoid", "pattern", None), ("price_min", None, None),
                               ("price_max", None, 35), ("preference", None, "darker"), ("detail", None, "x"),
                               ("anchor", None, "p1")):
        with pytest.raises(NotRemembered):
            forget_item(m, kind, facet, value)
    for kind, facet, value in (("colour", None, "black"), ("must", None, "black"), ("detail", None, None),
                               ("price_max", None, "cheap")):
        with pytest.raises(ForgetError):
            forget_item(m, kind, facet, value)
    assert not issubclass(ForgetError, NotRemembered) and issubclass(NotRemembered, ValueError)
