"""The in-process catalog index, the persisted lexical index and the query planner, on a small synthetic store
(random vectors, real schema): fast, no models."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from atelier.tools.catalog_index import CatalogIndex, LiveIndex, build_index, index_root
from atelier.tools.lexical import PARAMS, LexicalIndex
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product
from atelier.tools.search import ProductSearch
from atelier.tools.settings import Settings
from atelier.tools.store import ProductStore, product_metadata

CATEGORIES = [("dress", "full-body"), ("jeans", "bottom"), ("sneakers", "shoes"), ("t-shirt", "top")]
COLOURS = ["black", "red", "blue", "white"]
GENDERS = ["women", "men", "unisex"]
DIM = 16


class FixedEncoder:
    """Texts map to fixed random unit vectors (the planner, not the model, is under test)."""

    name, dim = "fixed", DIM

    def embed_texts(self, texts):
        rng = [np.random.default_rng(abs(hash(t)) % 2**32) for t in texts]
        out = np.stack([r.normal(size=DIM) for r in rng]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_images(self, images):
        return self.embed_texts([f"image {i}" for i in range(len(images))])


def catalog(n: int, seed: int = 0) -> list[Product]:
    rng = np.random.default_rng(seed)
    products = []
    for i in range(n):
        category, group = CATEGORIES[i % len(CATEGORIES)]
        colour, gender = COLOURS[(i // 4) % len(COLOURS)], GENDERS[i % 3]
        price = None if i % 10 == 0 else float(rng.integers(500, 10000)) / 100  # cents: not exact in float32
        products.append(Product(id=f"p{i:04d}", title=f"{colour} {category} no {i}", category=category, group=group,
                                colour=colour, gender=gender, price=price, description=f"a {colour} {category}"))
    return products


@pytest.fixture
def store(tmp_path):
    settings = Settings(store=tmp_path / "store", home=tmp_path)
    store = ProductStore.open(FixedEncoder.name, DIM, settings, create=True)
    products = catalog(400)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2, len(products), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
    store.upsert(products, ["h"] * len(products), vectors[0], vectors[1])
    return store, settings, products


FILTERS = [SearchFilters(must={"category": ["dress"]}),
           SearchFilters(must={"colour": ["red", "blue"], "gender": ["women"]}),
           SearchFilters(avoid={"colour": ["black"]}, price_max=40),
           SearchFilters(price_min=20, price_max=60, exclude_ids=["p0001", "p0002"]),
           SearchFilters(must={"category": ["no-such-category"]})]


@pytest.mark.parametrize("filters", FILTERS)
def test_mask_agrees_with_filters_matches(store, filters):
    store, _, products = store
    index = build_index(store, store.revision())
    mask = index.mask(filters)
    expected = {p.id for p in products
                if filters.matches(product_metadata(p, "")) and p.id not in filters.exclude_ids}
    assert {index.ids[r] for r in np.flatnonzero(mask)} == expected
    assert index.mask(SearchFilters()) is None


def test_index_rows_carry_products_metadata_and_vectors(store):
    store, _, products = store
    index = build_index(store, store.revision())
    row = index.row("p0013")
    assert index.product(row) == products[13]
    assert index.metadata(row) == {"category": "jeans", "group": "bottom", "colour": "white", "pattern": "unknown",
                                   "gender": "men", "source": "", "has_price": True, "price": products[13].price}
    assert index.metadata(index.row("p0010"))["has_price"] is False
    stored = store.vectors(["p0013"], "image")["p0013"]
    assert np.allclose(index.vectors["image"][row], stored, atol=1e-6)


def test_exact_search_is_the_brute_force_top_k(store):
    store, _, _ = store
    index = build_index(store, store.revision())
    query = FixedEncoder().embed_texts(["red dress"])[0]
    rows = np.flatnonzero(index.mask(FILTERS[1]))
    top, sims = index.exact(query, "text", rows, 5)
    brute = sorted(rows, key=lambda r: -float(index.vectors["text"][r] @ query))[:5]
    assert list(top) == brute and np.all(np.diff(sims) <= 0)


def test_saved_index_is_keyed_by_revision_and_rebuilt_after_a_write(store):
    store, settings, products = store
    root = index_root(settings)
    live = LiveIndex(store, root, ttl=0.0)
    first = live.get()
    assert CatalogIndex.load(root, first.revision) is not None
    assert (root / "current").read_text() == first.revision
    changed = products[5].model_copy(update={"colour": "white"})
    store.upsert([changed], ["h2"], np.ones((1, DIM), np.float32), np.ones((1, DIM), np.float32))
    second = live.get()
    assert second.revision != first.revision and len(second) == len(first)
    assert second.metadata(second.row("p0005"))["colour"] == "white"
    assert CatalogIndex.load(root, first.revision) is None


def test_lexical_index_scores_like_scikit_learn_and_survives_a_reload(tmp_path):
    docs = ["Red floral summer dress. red dress women", "black skinny jeans for men", "White sneakers unisex",
            "red red red t-shirt tee", "the and of"]
    index = LexicalIndex.build(docs)
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    vectorizer = TfidfVectorizer(**PARAMS, dtype=np.float32)
    matrix = vectorizer.fit_transform(docs)
    for query in ["red dress", "white sneakers for men", "red red tee", "t-shirt", "nothing matches"]:
        expected = (matrix @ vectorizer.transform([query]).T).toarray().ravel()
        rows, scores = loaded.search(query, None, 10)
        got = np.zeros(len(docs), np.float32)
        got[rows] = scores
        assert np.allclose(got, expected, atol=1e-6), query
    rows, _ = loaded.search("red", np.array([False, True, True, True, True]), 10)
    assert list(rows) == [3]


def test_planner_paths_return_only_allowed_products_best_first(store, monkeypatch):
    store, settings, _ = store
    engine = ProductSearch(store, FixedEncoder(), settings)
    index = engine.index
    query = engine.embed_query("blue jeans")
    broad = SearchFilters(avoid={"colour": ["black"]})
    for exact_rows in (0, 10_000):
        monkeypatch.setattr("atelier.tools.search.EXACT_ROWS", exact_rows)
        hits = engine.nearest(index, query, "text", broad, index.mask(broad), 20)
        assert len(hits) == 20 and all(h.metadata["colour"] != "black" for h in hits)
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    results = engine.search("red dress", SearchFilters(price_max=30), k=5)
    assert results and all(r.category == "dress" and r.colour == "red" and r.price <= 30 for r in results)


def test_products_written_after_the_index_are_still_found(store):
    store, settings, products = store
    engine = ProductSearch(store, FixedEncoder(), settings)
    engine.live.ttl = 3600
    index = engine.index
    late = Product(id="late", title="red dress late", category="dress", group="full-body", colour="red", price=9)
    vector = engine.embed_query("red dress")
    store.upsert([late], ["h"], vector[None, :], vector[None, :])
    hits = engine.nearest(index, vector, "text", SearchFilters(), None, 10)
    assert hits[0].id == "late" and hits[0].metadata["price"] == 9
    assert engine.products(index, ["late", "p0003"])["late"] == late


def test_the_catalog_words_are_built_with_the_index_and_the_gate_follows_its_revision(store):
    from atelier.tools.coverage import stems
    from atelier.tools.relevance import RelevanceGate

    store, settings, products = store
    root = index_root(settings)
    live = LiveIndex(store, root, ttl=0.0)
    first = live.get()
    assert stems("jeans") <= first.words and stems("white") <= first.words
    assert not stems("lawnmower") & first.words
    assert CatalogIndex.load(root, first.revision).words == first.words
    gate = RelevanceGate(live.get, None, {})
    assert gate.profile.revision == first.revision and gate.profile.size == len(products)
    assert gate.profile.background_text.shape == (min(len(products), 512), DIM)
    lawnmower = Product(id="mower", title="lawnmower", category="dress", group="full-body", colour="red")
    store.upsert([lawnmower], ["h3"], np.ones((1, DIM), np.float32), np.ones((1, DIM), np.float32))
    assert stems("lawnmower") <= gate.profile.words and gate.profile.revision != first.revision
