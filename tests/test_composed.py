"""Composed image search: change parsing (pure), the in-memory index, and real H&M colour variants."""

from __future__ import annotations

import numpy as np
import pytest

from atelier.tools.candidates import MatrixIndex
from atelier.tools.composed import Reference, detail_agreement, parse_change
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product

RED_DRESS = Reference(id="r1", title="Tilda red dress", attributes={"category": "dress", "colour": "red",
                      "pattern": "print", "gender": "women"}, price=30.0)


@pytest.mark.parametrize("text, must, avoid", [
    ("in black", {"colour": ["black"]}, {}),
    ("like this but in navy blue instead", {"colour": ["navy"]}, {}),
    ("with stripes instead", {"pattern": ["striped"]}, {}),
    ("without the print", {"pattern": ["solid"]}, {"pattern": ["print"]}),
    ("plain please", {"pattern": ["solid"]}, {"pattern": ["print"]}),
    ("same but for men", {"gender": ["men"]}, {}),
    ("not in red", {}, {"colour": ["red"]}),
    ("green instead of red", {"colour": ["green"]}, {"colour": ["red"]}),
    ("as a skirt", {"category": ["skirt"]}, {}),
])
def test_change_becomes_must_and_avoid(text, must, avoid):
    change = parse_change(text, RED_DRESS)
    assert change.filters.must == must
    assert change.filters.avoid == avoid


def test_new_colour_replaces_the_old_in_the_target_description():
    change = parse_change("in black", RED_DRESS)
    assert change.target == {"category": "dress", "colour": "black", "pattern": "print", "gender": "women"}
    text = change.description(RED_DRESS)
    assert "black" in text and "red" not in text.lower() and "Tilda" in text and "dress" in text
    assert change.changed == ["colour"]


def test_cheaper_caps_the_price_below_the_reference_and_details_are_soft():
    cheaper = parse_change("cheaper", RED_DRESS)
    assert cheaper.filters.price_max is not None and cheaper.filters.price_max < 30.0
    assert not cheaper.filters.must
    dearer = parse_change("a bit more expensive", RED_DRESS)
    assert dearer.filters.price_min is not None and dearer.filters.price_min > 30.0
    under = parse_change("under 20", RED_DRESS)
    assert under.filters.price_max == 20.0
    longer = parse_change("longer, with long sleeves", RED_DRESS)
    assert longer.details == {"length": "long", "sleeves": "long"} and not longer.filters.must
    assert "long sleeves" in longer.description(RED_DRESS)


def test_detail_agreement_reads_candidate_descriptions():
    assert detail_agreement("Calf-length dress with long sleeves.", {"sleeves": "long"})[0] == 1.0
    assert detail_agreement("Short dress with short sleeves.", {"sleeves": "long"})[0] == -1.0
    assert detail_agreement("A dress.", {"sleeves": "long"})[0] == 0.0


def _toy_index():
    products = [Product(id=str(i), title=f"item {i}", category=c, colour=col, gender=g, price=p)
                for i, (c, col, g, p) in enumerate([("dress", "red", "women", 30.0), ("dress", "black", "women", 25.0),
                                                    ("dress", "black", "unisex", 35.0), ("shirt", "black", "men", 10.0),
                                                    ("dress", "blue", "women", None)])]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return MatrixIndex(products, vectors, vectors[::-1].copy()), vectors


def test_matrix_index_filters_like_the_store():
    index, vectors = _toy_index()
    f = SearchFilters(must={"colour": ["black"], "gender": ["women"]}, exclude_ids=["1"])
    assert [h.id for h in index.query(vectors[2], "image", f, 10)] == ["2"]  # unisex serves women
    assert {h.id for h in index.query(vectors[0], "image", SearchFilters(price_max=26), 10)} == {"1", "3"}
    hits = index.query(vectors[4], "image", SearchFilters(), 2)
    assert hits[0].id == "4" and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert index.get_product("3").category == "shirt" and index.get_product("nope") is None


# --- real H&M colour variants in the test store ----------------------------------------------------------------

def _variant_pair(settings):
    """A reference and a same-product variant in another colour family, both in the sample store."""
    from atelier.tools.store import open_store

    store = open_store(settings)
    by_code: dict[str, list] = {}
    for pid, meta, _ in store.iter_metadata():
        by_code.setdefault(pid[:-3], []).append((pid, meta))  # H&M article id = product code + variant
    for code in sorted(by_code):
        items = by_code[code]
        colours = {m["colour"] for _, m in items}
        if len(items) >= 2 and len(colours) >= 2 and all(m["group"] == "top" for _, m in items):
            ref = items[0]
            target = next(x for x in items if x[1]["colour"] != ref[1]["colour"])
            return ref[0], target[0], target[1]["colour"]
    raise AssertionError("no colour-variant pair in the sample store")


def composed_search(settings):
    from atelier.assistant.runtime import Runtime

    return Runtime(settings).composed.search


def test_composed_search_finds_the_colour_variant(hm_settings):
    search = composed_search(hm_settings)
    ref, target, colour = _variant_pair(hm_settings)
    results = search(ref, f"like this but in {colour}", k=10)
    ids = [r.id for r in results]
    assert ref not in ids
    assert target in ids, (ref, target, colour, [(r.id, r.title, r.colour) for r in results])
    assert all(r.colour == colour for r in results)
    assert "changed as asked: colour=" + colour in results[0].why
    assert "photo similarity" in results[0].why


def test_composed_search_cheaper_and_from_a_photo(hm_settings):
    from PIL import Image

    from atelier.tools.store import open_store

    ref, _, colour = _variant_pair(hm_settings)
    product = open_store(hm_settings).get_product(ref)
    search = composed_search(hm_settings)
    cheaper = search(ref, "same but cheaper", k=5)
    assert cheaper and all(r.price is not None and r.price < product.price for r in cheaper)
    assert all("below" in r.why for r in cheaper)
    photo = Image.open(product.image_path).convert("RGB")
    results = search(photo, f"in {colour}", k=5)
    assert results and all(r.colour == colour for r in results)
    with pytest.raises(ValueError, match="unknown product id"):
        search("no-such-id", "in black")
