"""The shared taxonomy and the query parser: real vocabulary from both catalogs maps onto one space."""

import pytest

from atelier.tools.query_parser import SearchFilters, parse_query
from atelier.tools.taxonomy import get_taxonomy


@pytest.mark.parametrize(
    ("facet", "source", "raw", "expected"),
    [
        ("colour", "hm", "Dark Blue", "navy"),
        ("colour", "fpi", "Navy Blue", "navy"),
        ("colour", "hm", "Light Beige", "beige"),
        ("category", "hm", "Sneakers", "sneakers"),
        ("category", "fpi", "Casual Shoes", "sneakers"),
        ("category", "fpi", "Jeans", "jeans"),
        ("category", "hm", "Dress", "dress"),
        ("category", "fpi", "Dresses", "dress"),
        ("pattern", "hm", "Stripe", "striped"),
        ("category", "hm", "Wood balls", "unknown"),
    ],
)
def test_source_values_map_to_shared_vocabulary(facet, source, raw, expected):
    assert get_taxonomy().from_source(facet, source, raw) == expected


def test_every_category_has_a_known_group():
    tax = get_taxonomy()
    assert {tax.group_of(c) for c in tax.values("category")} <= set(tax.groups)
    assert tax.group_of("jeans") == "bottom" and tax.group_of("sneakers") == "shoes"


def test_black_dress_under_40():
    parsed = parse_query("black dress under 40")
    assert parsed.filters.must == {"colour": ["black"], "category": ["dress"]}
    assert parsed.filters.price_max == 40 and parsed.filters.price_min is None


@pytest.mark.parametrize(
    ("query", "must", "avoid", "low", "high"),
    [
        ("navy blue jeans for men", {"colour": ["navy"], "category": ["jeans"], "gender": ["men"]}, {}, None, None),
        ("a summer dress but not black", {"category": ["dress"]}, {"colour": ["black"]}, None, None),
        ("striped shirt between 10 and 25 euros", {"pattern": ["striped"], "category": ["shirt"]}, {}, 10, 25),
        ("sneakers without print over 30", {"category": ["sneakers"]}, {"pattern": ["print"]}, 30, None),
        ("trainers £20-£35", {"category": ["sneakers"]}, {}, 20, 35),
        ("something nice", {}, {}, None, None),
    ],
)
def test_parse_query(query, must, avoid, low, high):
    f = parse_query(query).filters
    assert f.must == must
    assert f.avoid == avoid
    assert (f.price_min, f.price_max) == (low, high)


def test_later_filters_override_only_what_they_contradict():
    first = SearchFilters(must={"colour": ["red"], "category": ["dress"]}, avoid={"pattern": ["print"]}, price_max=50)
    later = SearchFilters(must={"colour": ["blue"]}, avoid={"colour": ["black"]})
    merged = first.merged(later)
    assert merged.must == {"colour": ["blue"], "category": ["dress"]}
    assert merged.avoid == {"pattern": ["print"], "colour": ["black"]}
    assert merged.price_max == 50
    allowed_again = merged.merged(SearchFilters(must={"pattern": ["print"]}))
    assert "pattern" not in allowed_again.avoid


def test_where_clause_and_python_matcher_agree():
    f = SearchFilters(must={"gender": ["men"], "category": ["jeans"]}, avoid={"colour": ["black"]}, price_max=30)
    where = f.to_where()
    assert {"gender": {"$in": ["men", "unisex"]}} in where["$and"]
    assert {"colour": {"$nin": ["black"]}} in where["$and"]
    assert f.matches({"gender": "unisex", "category": "jeans", "colour": "blue", "price": 20.0})
    assert not f.matches({"gender": "men", "category": "jeans", "colour": "black", "price": 20.0})
    assert not f.matches({"gender": "men", "category": "jeans", "colour": "blue"})
