"""Outfit completion on the real H&M sample store (``hm_settings``): slots, groups, filters, errors, CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from atelier.tools.outfit import Candidate, OutfitError, diversify, missing_slots, slot_filters
from atelier.tools.outfit_model import Compatibility, ItemFeatures, load_scorer
from atelier.tools.outfit_rules import colour_harmony
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product

WOMENS_TEE = "0516000086"  # ESSENTIAL AGNES, white t-shirt, women (product_code 516000 % 6 == 0)
MENS_SHIRT = "0519516001"  # STYLO SLIM SHIRT, white shirt, men
DRESS = "0522918034"  # Lily dress W, black dress, women


@pytest.fixture()
def completer(hm_settings):
    from atelier.assistant.runtime import Runtime

    return Runtime(hm_settings).completer


def suggestions(slots) -> list:
    return [item for slot in slots for item in slot.items]


def test_slot_rules_are_data():
    assert missing_slots(["top"])[:2] == ["bottom", "shoes"]
    assert "top" not in missing_slots(["top"])
    assert {"top", "bottom"}.isdisjoint(missing_slots(["full-body"]))
    assert missing_slots(["top", "bottom"]) == ["shoes", "outerwear", "bag", "accessory"]


def test_colour_rules():
    assert colour_harmony("black", "red") == 1.0
    assert colour_harmony("red", "orange") < 0 < colour_harmony("blue", "orange")
    assert colour_harmony("unknown", "red") == 0.0


def test_slot_filters_keep_budget_dislikes_department_but_not_the_anchor_item_facets():
    session = SearchFilters(must={"category": ["dress"], "colour": ["red"], "gender": ["women"]},
                            avoid={"colour": ["black"]}, price_max=30)
    shoes = slot_filters(session, "shoes", None, targeted=False, exclude=["x"])
    assert shoes.must == {"gender": ["women"], "group": ["shoes"]}
    assert shoes.avoid == {"colour": ["black"]} and shoes.price_max == 30 and shoes.exclude_ids == ["x"]
    asked = slot_filters(SearchFilters(must={"category": ["sneakers", "dress"], "colour": ["white"]}), "shoes",
                         "men", targeted=True, exclude=[])
    assert asked.must == {"category": ["sneakers"], "colour": ["white"], "group": ["shoes"], "gender": ["men"]}


def test_diversify_drops_colour_variants_and_near_duplicates():
    def cand(pid: str, family: str, score: float, vec: list[float]) -> Candidate:
        v = np.asarray(vec, np.float32) / np.linalg.norm(vec)
        return Candidate(Product(id=pid, title=pid), ItemFeatures(group="shoes", image=v), family, Compatibility(score))

    pool = [cand("a", "f1", 3.0, [1, 0]), cand("a2", "f1", 2.9, [0, 1]), cand("b", "f2", 2.8, [1, 0.01]),
            cand("c", "f3", 2.0, [0, 1])]
    assert [c.product.id for c in diversify(pool, 2)] == ["a", "c"]


def test_top_gets_bottom_and_shoes_never_another_top(hm_settings, completer):
    slots = completer.complete([WOMENS_TEE], k=5)
    groups = [s.group for s in slots]
    assert {"bottom", "shoes"} <= set(groups) and "top" not in groups
    assert len(groups) == len(set(groups))
    for slot in slots:
        assert slot.items, f"no suggestion for {slot.group}"
        assert len(slot.items) <= 5
        assert {i.group for i in slot.items} == {slot.group}
        assert all(i.gender in ("women", "unisex") for i in slot.items)
        assert all(slot.group in i.why for i in slot.items)
    ids = [i.id for i in suggestions(slots)]
    assert WOMENS_TEE not in ids and len(ids) == len(set(ids))
    assert completer.complete([WOMENS_TEE], k=5) == slots  # deterministic


def test_target_group_only_that_slot(hm_settings, completer):
    slots = completer.complete([WOMENS_TEE], target_group="shoes", k=4)
    assert [s.group for s in slots] == ["shoes"]
    assert 0 < len(slots[0].items) <= 4
    assert all(i.group == "shoes" and i.category in ("sneakers", "boots", "heels", "sandals", "flats", "unknown")
               for i in slots[0].items)


def test_filled_target_slot_is_refused(hm_settings, completer):
    with pytest.raises(OutfitError, match="already has a top"):
        completer.complete([WOMENS_TEE], target_group="top")
    with pytest.raises(OutfitError, match="already has a bottom"):
        completer.complete([DRESS], target_group="bottom")


def test_filters_respected_in_every_suggestion(hm_settings, completer):
    unfiltered = suggestions(completer.complete([DRESS], k=5))
    assert any(i.colour == "black" or (i.price or 0) > 20 for i in unfiltered)  # the filter has work to do
    filters = SearchFilters(avoid={"colour": ["black"]}, price_max=20)
    filtered = suggestions(completer.complete([DRESS], k=5, filters=filters))
    assert filtered
    assert all(i.colour != "black" and i.price is not None and i.price <= 20 for i in filtered)


def test_dress_has_no_bottom_or_top_slot(hm_settings, completer):
    groups = [s.group for s in completer.complete([DRESS], k=3)]
    assert "shoes" in groups and "bottom" not in groups and "top" not in groups


def test_mens_top_gets_mens_or_unisex_suggestions(hm_settings, completer):
    items = suggestions(completer.complete([MENS_SHIRT], k=5))
    assert items and all(i.gender in ("men", "unisex") for i in items)
    women = suggestions(completer.complete([MENS_SHIRT], k=5, filters=SearchFilters(must={"gender": ["women"]})))
    assert women and all(i.gender in ("women", "unisex") for i in women)


def test_two_items_fill_two_slots(hm_settings, completer):
    bottom = completer.complete([WOMENS_TEE], target_group="bottom", k=1)[0].items[0].id
    groups = [s.group for s in completer.complete([WOMENS_TEE, bottom], k=3)]
    assert "top" not in groups and "bottom" not in groups and "shoes" in groups


def test_unknown_id_is_a_clear_error(hm_settings, completer):
    with pytest.raises(OutfitError, match="unknown product id: nope-123"):
        completer.complete(["nope-123"])
    with pytest.raises(OutfitError, match="unknown slot"):
        completer.complete([WOMENS_TEE], target_group="spaceship")


def test_uploaded_photo_is_classified_by_its_neighbours(hm_settings, completer, monkeypatch):
    from PIL import Image

    vector = completer.store.vectors([WOMENS_TEE], "image")[WOMENS_TEE]
    # The photo's embedding is what ingestion stored for it; skipping the CNN keeps this test fast.
    monkeypatch.setattr(completer.encoder, "embed_images", lambda images: vector[None, :])
    monkeypatch.setattr("atelier.tools.outfit._extracted_attributes",
                        lambda image, extractor: {"group": ("socks", 0.81)})
    slots = completer.complete([], image=Image.new("RGB", (64, 96), "white"), k=2)
    groups = [s.group for s in slots]
    # the neighbours' near-unanimous "top" outvotes a less confident photo classifier
    assert "top" not in groups and {"bottom", "shoes"} <= set(groups)
    assert all(i.group == s.group and i.gender in ("women", "unisex") for s in slots for i in s.items)


def test_missing_weights_fall_back_to_rules(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        scorer = load_scorer(tmp_path / "none.pt")
    assert not scorer.learnt and "rules + embeddings" in caplog.text
    outfit = [ItemFeatures(group="top", colour="white", gender="women", text=np.eye(384, dtype=np.float32)[0])]
    cands = [ItemFeatures(group="shoes", colour="black", gender="women", text=np.eye(384, dtype=np.float32)[0]),
             ItemFeatures(group="shoes", colour="black", gender="men", text=np.eye(384, dtype=np.float32)[1])]
    scores = scorer.score(outfit, "shoes", cands)
    assert scores[0].total > scores[1].total and "model" not in scores[0].parts


def test_shipped_weights_load_and_are_small():
    from atelier.tools.outfit_model import DEFAULT_WEIGHTS

    scorer = load_scorer(DEFAULT_WEIGHTS)
    assert scorer.learnt and scorer.meta is not None
    assert DEFAULT_WEIGHTS.stat().st_size + DEFAULT_WEIGHTS.with_suffix(".json").stat().st_size < 10_000_000
    assert scorer.meta.cooccurrence.baskets > 500


def test_cli_outfit_json_and_errors(hm_settings):
    from typer.testing import CliRunner

    from atelier.ui.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["outfit", "--product", WOMENS_TEE, "--slot", "shoes", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [s["group"] for s in payload["slots"]] == ["shoes"]
    item = payload["slots"][0]["items"][0]
    assert set(item) == {"id", "title", "category", "group", "colour", "pattern", "gender", "price", "image_path",
                         "score", "why"} and item["group"] == "shoes"
    bad = runner.invoke(app, ["outfit", "--product", "nope-123", "--json"])
    assert bad.exit_code != 0 and "unknown product id" in bad.output and "Traceback" not in bad.output
    bad_image = runner.invoke(app, ["outfit", "--image", "/nonexistent.jpg"])
    assert bad_image.exit_code != 0 and "image file not found" in bad_image.output
