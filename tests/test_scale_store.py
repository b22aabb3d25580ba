"""The synthetic-store builder behind the 250k / 1M measurements (``benchmarks/scale_store.py``): copies of real
products with new ids, jittered prices and noisy vectors; ``--merge`` copies verbatim. Small stores, no models."""

from __future__ import annotations

import json

import numpy as np

from atelier.tools.schema import Product
from atelier.tools.settings import Settings
from atelier.tools.store import ProductStore
from benchmarks.scale_store import build

DIM = 384


def source_store(path, n: int) -> tuple[list[Product], np.ndarray]:
    store = ProductStore.open("compact", DIM, Settings(store=path), create=True)
    products = [Product(id=f"real{i}", title=f"red dress {i}", category="dress", group="full-body",
                        colour=["red", "black"][i % 2], gender="women", price=10.0 + i) for i in range(n)]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.upsert(products, ["h"] * n, vectors, vectors)
    return products, vectors


def test_synthetic_store_keeps_the_real_distribution_with_new_ids_and_noisy_vectors(tmp_path):
    products, vectors = source_store(tmp_path / "real", 40)
    report = build(100, tmp_path / "syn", [tmp_path / "real"], log=lambda m: None)
    assert report["size"] == 100 and json.loads((tmp_path / "syn" / "synthetic.json").read_text())["size"] == 100
    syn = ProductStore.open("compact", DIM, Settings(store=tmp_path / "syn"))
    assert syn.count() == 100
    rows = syn.text.get(include=["metadatas", "embeddings"])
    assert all(pid.startswith("syn") for pid in rows["ids"]) and len(set(rows["ids"])) == 100
    by_title = {p.title: (p, v) for p, v in zip(products, vectors)}
    for meta, vector in zip(rows["metadatas"], rows["embeddings"]):
        original, original_vector = by_title[meta["title"]]
        assert meta["colour"] == original.colour and meta["category"] == "dress"
        assert 0.8 * original.price - 1e-6 <= meta["price"] <= 1.2 * original.price + 1e-6
        assert 0.85 < float(np.dot(vector, original_vector)) < 0.99
    assert json.loads(rows["metadatas"][0]["product"])["id"] == rows["ids"][0]


def test_merge_copies_products_verbatim(tmp_path):
    products, vectors = source_store(tmp_path / "real", 30)
    build(None, tmp_path / "merged", [tmp_path / "real"], merge=True, log=lambda m: None)
    merged = ProductStore.open("compact", DIM, Settings(store=tmp_path / "merged"))
    assert merged.count() == 30
    got = merged.vectors(["real7"], "text")["real7"]
    assert np.allclose(got, vectors[7], atol=1e-6)


def test_ingestion_sets_the_hnsw_search_breadth_and_serving_leaves_it(tmp_path):
    def ef(store):
        return store.text.configuration_json["hnsw"]["ef_search"], store.image.configuration_json["hnsw"]["ef_search"]

    created = ProductStore.open("compact", DIM, Settings(store=tmp_path / "s", hnsw_ef_search=150), create=True)
    assert ef(created) == (150, 150)
    retuned = ProductStore.open("compact", DIM, Settings(store=tmp_path / "s", hnsw_ef_search=250), create=True)
    assert ef(retuned) == (250, 250)
    served = ProductStore.open("compact", DIM, Settings(store=tmp_path / "s", hnsw_ef_search=90))
    assert ef(served) == (250, 250)


def test_new_collections_get_the_measured_graph_degree_and_old_ones_keep_theirs(tmp_path):
    def m(store):
        return store.text.configuration_json["hnsw"]["max_neighbors"], \
            store.image.configuration_json["hnsw"]["max_neighbors"]

    assert Settings().hnsw_m == 32
    assert m(ProductStore.open("compact", DIM, Settings(store=tmp_path / "new"), create=True)) == (32, 32)
    old = ProductStore.open("compact", DIM, Settings(store=tmp_path / "old", hnsw_m=16), create=True)
    products = [Product(id=f"p{i}", title=f"dress {i}", category="dress", group="full-body", colour="red",
                        gender="women", price=10.0) for i in range(5)]
    vectors = np.eye(5, DIM, dtype=np.float32)
    old.upsert(products, ["h"] * 5, vectors, vectors)
    reopened = ProductStore.open("compact", DIM, Settings(store=tmp_path / "old"), create=True)
    assert m(reopened) == (16, 16)
    assert reopened.nearest(vectors[3], "text", 1)[0] == ["p3"]


def test_a_store_built_embedded_is_served_as_is_by_chroma_run(tmp_path):
    """``bench_scale --server`` measures the 1M store through ``chroma run`` over the folder ``scale_store`` wrote
    embedded: the server must answer with the same products and vectors, and stop when asked."""
    from benchmarks.bench_scale import rss_mb, serve

    _, vectors = source_store(tmp_path / "real", 25)
    server, url = serve(tmp_path / "real")
    try:
        remote = ProductStore.open("compact", DIM, Settings(chroma_url=url))
        assert remote.count() == 25
        assert np.allclose(remote.vectors(["real3"], "image")["real3"], vectors[3], atol=1e-6)
        assert remote.nearest(vectors[11], "text", 1)[0] == ["real11"]
        assert rss_mb(server.pid) > 10
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert server.returncode is not None
