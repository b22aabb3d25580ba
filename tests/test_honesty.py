"""Honest answers (issue 17): request terms, coverage, the calibrated gate's decision, reply wording, grounding.

Fast: synthetic products, no store and no encoder. The issue's conversations run on the H&M sample store as
replay files (tests/conversations/29-34).
"""

from __future__ import annotations

import numpy as np
import pytest

from atelier.assistant.grounding import false_claims, ground_reply
from atelier.assistant.replies import honest_reply, honest_title
from atelier.tools.coverage import cover, request_terms
from atelier.tools.relevance import GateCalibration, Honesty, RelevanceSignals, RelevanceVerdict
from atelier.tools.schema import Product, SearchResult
from atelier.tools.training.relevance import Observation, fit, score


def result(pid: str, title: str, category: str, group: str, description: str = "", **attributes: str) -> SearchResult:
    product = Product(id=pid, title=title, description=description, category=category, group=group,
                      colour="black", price=20.0, attributes=attributes)
    return SearchResult.from_product(product, 1.0, "")


PUMP = result("1", "Juliana pump", "heels", "shoes", "Pumps with a pointed toe.")
SANDAL = result("2", "Capri footbed sandal", "sandals", "shoes", "Sandals with a cork footbed.")
SKI_JACKET = result("3", "TITAN shell ski jkt", "jacket", "outerwear", "Waterproof ski jacket.")
BOOT = result("4", "Joan heeled boot", "boots", "shoes", "Ankle boots in faux leather.")
HIKING = result("5", "Harry hiking boot", "boots", "shoes", "Hiking boots with a chunky sole.")
WINTER = result("6", "Fanny winterboot", "boots", "shoes", "Waterproof boots with a warm lining.")
TUX_LEGGINGS = result("7", "Tuxedo leggings", "leggings", "bottom", "Leggings in soft fabric.",
                      product_type_name="Leggings/Tights")
BAG = result("8", "Bag Buster bum bag", "bag", "bag", "Bum bag with a zip, 15 cm wide.")


def terms_of(query: str) -> list[tuple[str, str, bool]]:
    return [(t.text, t.kind, t.head) for t in request_terms(query)]


@pytest.mark.parametrize("query, expected", [
    ("golf shoes", [("golf", "word", False), ("shoes", "group", True)]),
    ("a wetsuit for surfing", [("wetsuit", "garment", True), ("surfing", "word", False)]),
    ("hiking boots, waterproof", [("hiking", "word", False), ("boots", "category", True),
                                  ("waterproof", "word", False)]),
    ("a laptop bag for a 15 inch macbook", [("laptop", "word", False), ("bag", "category", True),
                                            ("15 inch", "size", False), ("macbook", "word", False)]),
    ("I'm looking for jersey tshirt", [("jersey", "word", False), ("tshirt", "category", True)]),
    ("a coffee machine under 50", [("coffee", "colour", False), ("machine", "word", True)]),
    ("black dress without a hood, not striped", [("black", "colour", False), ("dress", "category", True)]),
    ("something comfy for a wedding", []),
    ("a cosy hoodie for men under 40", [("hoodie", "category", True)]),
])
def test_request_terms_find_the_head_and_every_content_word(query, expected):
    assert terms_of(query) == expected


def test_a_qualifier_counts_only_on_a_result_carrying_the_garment():
    coverage = cover(request_terms("ski boots"), [SKI_JACKET, BOOT])
    assert coverage.unmatched == ["ski"] and not coverage.complete, "a ski jacket does not make ski boots"
    assert coverage.head == "boots" and coverage.head_matched
    golf = cover(request_terms("golf shoes"), [PUMP, SANDAL])
    assert (golf.unmatched, golf.missing, golf.matched) == (["golf"], ["golf"], ["shoes"])


def test_complete_needs_one_result_with_every_term():
    coverage = cover(request_terms("hiking boots, waterproof"), [BOOT, HIKING, WINTER])
    assert not coverage.complete and coverage.missing == [], "each term exists, but on different boots"
    assert coverage.unmatched == ["waterproof"], "the best result (a hiking boot, earliest) lacks waterproof"
    assert coverage.best == [1, 2, 2]
    assert cover(request_terms("waterproof boots"), [BOOT, WINTER]).complete


def test_a_garment_head_must_be_what_the_product_is():
    assert cover(request_terms("a tuxedo"), [TUX_LEGGINGS]).unmatched == ["tuxedo"]
    assert cover(request_terms("tuxedo leggings"), [TUX_LEGGINGS]).complete


def test_sizes_need_the_same_number_and_unit():
    coverage = cover(request_terms("a bag for a 15 inch laptop"), [BAG])
    assert coverage.sizes == ["15 inch"] and "laptop" in coverage.unmatched
    assert cover(request_terms("a 15 cm bag"), [BAG]).complete


def honesty(query: str, results: list[SearchResult], matches: bool = False, refused: bool = False) -> Honesty:
    verdict = RelevanceVerdict(matches=matches, in_domain=not refused)
    return Honesty.of(verdict, cover(request_terms(query), results), bool(results))


def test_partial_replies_name_every_unmatched_term_and_never_say_match():
    golf = honest_reply("search", [PUMP, SANDAL], honesty("golf shoes", [PUMP, SANDAL]), what="shoes")
    assert golf.startswith("I have no golf shoes; these are other shoes.") and "Juliana pump" in golf
    laptop = honest_reply("search", [BAG], honesty("a laptop bag for a 15 inch macbook", [BAG]), what="bags")
    for term in ("laptop", "macbook", "15 inch", "don't give sizes"):
        assert term in laptop
    wetsuit = honest_reply("search", [PUMP], honesty("a wetsuit for surfing", [PUMP]), what="items")
    assert wetsuit.startswith("Nothing in the catalog is a wetsuit or mentions surfing.")
    for reply in (golf, laptop, wetsuit):
        assert "Here are" not in reply and "Top match" not in reply
    assert honest_title(honesty("golf shoes", [PUMP])) == "Closest items, not a match: no golf"


def test_out_of_domain_reply_shows_nothing_and_says_what_the_shop_sells():
    refused = honesty("a lawnmower", [], refused=True)
    reply = honest_reply("search", [], refused, what="items")
    assert "lawnmower" in reply and "this shop sells" in reply and honest_title(refused) is None


def test_a_full_match_keeps_the_usual_reply():
    match = honesty("black boots", [BOOT], matches=True)
    assert match.match and honest_reply("search", [BOOT, BOOT], match, what="black boots").startswith("Here are")
    empty = honest_reply("search", [], honesty("purple jacket", [], matches=True), what="purple jackets")
    assert empty.startswith("Nothing in the catalog matches purple jackets")


def test_grounding_cuts_a_sentence_that_claims_an_unmatched_term():
    assert false_claims("These golf shoes are perfect for the course.", ["golf"]) == ["golf"]
    assert false_claims("I have no golf shoes, but these pumps are lovely.", ["golf"]) == []
    assert false_claims("Here are great matches for you.", ["golf"]) == ["matches"]
    grounded = ground_reply("These golf shoes are ideal. Juliana pump costs 20.00. I have no golf shoes.",
                            [PUMP], unmatched=["golf"])
    assert grounded.text == "Juliana pump costs 20.00. I have no golf shoes." and grounded.removed == ["golf"]
    assert ground_reply("These golf shoes are ideal.", [PUMP]).removed == [], "no unmatched terms: nothing cut"


def observation(group: str, label: bool, dense: float, complete: bool, split: str = "dev") -> Observation:
    signals = RelevanceSignals(best_dense=dense, margin=dense, vocab=1.0 if complete else 0.0,
                               head=1.0 if group != "out_of_domain" else 0.0, coverage=float(complete),
                               complete=float(complete))
    return Observation(f"q{dense}", group, split, label, [], signals, complete, 10, False)


def test_fit_picks_a_dev_threshold_that_refuses_few_in_catalog_queries():
    rng = np.random.default_rng(0)
    dev = [observation("in_catalog", False, float(d), True) for d in rng.uniform(0.4, 0.8, 60)]
    dev += [observation("out_of_domain", True, float(d), bool(i % 2)) for i, d in enumerate(rng.uniform(0.2, 0.45, 40))]
    calibration = fit(dev, "fake", "abc")
    metrics = score(dev, calibration)
    assert metrics["in_catalog_refused"] <= 0.02 and metrics["accuracy"] >= 0.9
    assert calibration.metrics["dev"]["accuracy"] == metrics["accuracy"]
    before = score(dev, None, floor=0.285, coverage=False)
    assert before["out_of_domain"] < metrics["out_of_domain"], "one floor lets junk through"
    low, high = (GateCalibration.probability(calibration, observation("x", False, d, True).signals) for d in (0.2, 0.8))
    assert low > high, "P(nothing matches) falls as the dense similarity rises"


def test_the_gate_never_calls_an_incomplete_request_a_match():
    from atelier.tools.relevance import CatalogProfile, RelevanceGate

    gate = RelevanceGate(lambda: None, "fp", {"fp": GateCalibration(encoder="e", fingerprint="fp", mean=[0.0] * 7,
                                                               scale=[1.0] * 7, weights=[0.0] * 7, bias=-9.0,
                                                               threshold=0.5)})
    profile = CatalogProfile({"boot"}, np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32), 1, "r1")
    gate.index = lambda: type("Index", (), {"revision": "r1"})()
    gate._profile = profile
    sims = [{"text": 0.9}]
    lawnmower = gate.judge(request_terms("a lawnmower"), sims, np.ones(2), [BOOT], hard_filters=False, floor=0.3)
    assert not lawnmower.matches and not lawnmower.show, "P(nothing) is ~0, but no result is a lawnmower"
    golf = gate.judge(request_terms("golf boots"), sims, np.ones(2), [BOOT], hard_filters=False, floor=0.3)
    assert not golf.matches and golf.show and golf.unmatched == ["golf"], "closest boots, labelled as such"
    boots = gate.judge(request_terms("black boots"), sims, np.ones(2), [BOOT], hard_filters=False, floor=0.3)
    assert boots.matches and boots.calibrated
