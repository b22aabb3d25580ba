"""Attribute extraction: calibration maths, head files, the extractor's decision logic, and real H&M photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atelier.tools.attributes import (AttributeExtractor, AttributePrediction, apply_predictions, colour_features,
    load_attribute_config)
from atelier.tools.probes import Head, HeadSet, choose_threshold, fit_temperature, softmax
from atelier.tools.schema import Product
from atelier.tools.taxonomy import get_taxonomy

REPO = Path(__file__).resolve().parent.parent


def test_config_uses_the_taxonomy_and_gates_details_by_group():
    config = load_attribute_config()
    tax = get_taxonomy()
    assert config.specs["category"].values == tax.values("category")
    assert config.specs["colour"].values == tax.values("colour")
    assert set(config.specs["group"].values) <= set(tax.groups)
    assert "shoes" in config.specs["group"].values and "other" not in config.specs["group"].values
    assert config.specs["sleeves"].applies_to and "shoes" not in config.specs["sleeves"].applies_to
    assert "a photo of a dress" in config.specs["category"].prompts("dress")
    assert all(config.specs[n].from_text for n in ("sleeves", "neckline", "length", "fit"))


def test_colour_features_see_the_garment_not_the_white_background():
    red = Image.new("RGB", (40, 60), (255, 255, 255))
    red.paste((200, 20, 30), (10, 10, 30, 50))
    blue = Image.new("RGB", (40, 60), (255, 255, 255))
    blue.paste((20, 40, 200), (10, 10, 30, 50))
    white = colour_features(Image.new("RGB", (40, 60), (255, 255, 255)))
    fr, fb = colour_features(red), colour_features(blue)
    assert white.sum() == 0
    assert fr[76] == pytest.approx(fb[76]) and 0.2 < fr[76] < 0.5
    assert int(np.argmax(fr[:72])) // 6 in (0, 11)  # red hue bin
    assert 7 <= int(np.argmax(fb[:72])) // 6 <= 8  # blue hue bin
    grey = Image.new("RGB", (20, 20), (90, 90, 90))
    assert colour_features(grey)[72:76].sum() > 0.99 and colour_features(grey)[:72].sum() == 0


def test_temperature_scaling_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 5))
    p = softmax(logits / 2.5)
    labels = np.array([rng.choice(5, p=row / row.sum()) for row in p.astype(np.float64)])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.12)


def test_threshold_is_the_lowest_floor_reaching_target_precision():
    conf = np.linspace(0.99, 0.01, 100)
    correct = np.arange(100) < 60  # the 60 most confident are right
    t = choose_threshold(conf, correct, target=0.9, min_kept=10)
    kept = conf >= t
    assert correct[kept].mean() >= 0.9
    assert 60 <= kept.sum() <= 67
    assert choose_threshold(conf, np.zeros(100, bool), 0.9, 10) > 1.0  # never precise enough: always "unknown"


def test_head_set_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    head = Head(attribute="colour", kind="fusion", classes=["black", "red"], inputs=("embedding", "pixels"),
                temperature=1.7, threshold=0.6, weight=rng.normal(size=(2, 5)).astype(np.float32),
                bias=np.array([0.1, -0.1], np.float32))
    heads = HeadSet(encoder="x", fingerprint="abc", default={"colour": "fusion"})
    heads.add(head)
    heads.save(tmp_path / "p.json")
    back = HeadSet.load(tmp_path / "p.json")
    x = {"embedding": rng.normal(size=(3, 3)), "pixels": rng.normal(size=(3, 2))}
    got = back.get("colour")
    assert got.inputs == ("embedding", "pixels") and got.threshold == 0.6
    np.testing.assert_allclose(got.proba(got.features(x)), head.proba(head.features(x)), atol=2e-3)
    assert got.features({"embedding": x["embedding"], "pixels": None}) is None


class NoEncoder:
    name = "none"
    dim = 4

    def embed_texts(self, texts):  # pragma: no cover - must not be called
        raise AssertionError("the extractor should not need the encoder here")

    embed_images = embed_texts


def _onehot_head(attribute: str, classes: list[str], threshold: float = 0.5) -> Head:
    """A head reading class i off embedding dimension i (scaled so one dimension dominates)."""
    weight = np.zeros((len(classes), 4), np.float32)
    for i in range(min(len(classes), 4)):
        weight[i, i] = 10.0
    return Head(attribute=attribute, kind="probe", classes=classes, threshold=threshold, weight=weight,
                bias=np.zeros(len(classes), np.float32))


@pytest.fixture()
def tiny_extractor():
    full = load_attribute_config()
    specs = {n: full.specs[n] for n in ("group", "category", "colour", "sleeves")}
    config = type(full)(specs, full.target_precision, full.default_threshold, "test")
    heads = HeadSet(encoder="none", fingerprint="none")
    heads.add(_onehot_head("group", ["top", "shoes", "bottom", "full-body"]))
    heads.add(_onehot_head("category", ["t-shirt", "sneakers", "dress", "skirt"]))
    heads.add(_onehot_head("colour", ["black", "red", "blue", "white"], threshold=0.9))
    heads.add(_onehot_head("sleeves", ["long", "short", "sleeveless"]))
    heads.default = {n: "probe" for n in specs}
    return AttributeExtractor(NoEncoder(), heads=heads, config=config)


def test_extractor_gates_details_reconciles_and_abstains(tiny_extractor):
    top, shoe, unsure = [1, 0, 0, 0], [0, 1, 0, 0], [0.1, 0.1, 0.1, 0.1]
    out = tiny_extractor.predict_features(np.array([top, shoe, unsure], np.float32))
    assert out[0]["group"].value == "top" and out[0]["category"].value == "t-shirt"
    assert out[0]["sleeves"].value == "long"  # a top can show its sleeves
    assert "sleeves" not in out[1]  # shoes have none
    assert out[2]["colour"].value == "unknown" and out[2]["colour"].confidence < 0.9
    assert all(0.0 <= p.confidence <= 1.0 for item in out for p in item.values())


def test_known_group_restricts_the_category(tiny_extractor):
    looks_like_shoe = np.array([[0, 1, 0.6, 0.5]], np.float32)
    free = tiny_extractor.predict_features(looks_like_shoe)[0]
    assert free["category"].value == "sneakers"
    told = tiny_extractor.predict_features(looks_like_shoe, known=[{"group": "full-body"}])[0]
    assert told["category"].value == "dress"


def test_fill_never_overwrites_given_values_and_marks_predictions():
    product = Product(id="1", title="Cotton tee", category="t-shirt", group="top", colour="black")
    preds = {"colour": AttributePrediction(value="red", confidence=0.9),
             "pattern": AttributePrediction(value="striped", confidence=0.8, method="probe"),
             "gender": AttributePrediction(value="unknown", confidence=0.3),
             "sleeves": AttributePrediction(value="short", confidence=0.7)}
    filled = apply_predictions(product, preds)
    assert filled.colour == "black" and filled.pattern == "striped" and filled.gender == "unknown"
    assert filled.attributes["sleeves"] == "short"
    assert filled.attributes["predicted"] == {"pattern": {"value": "striped", "confidence": 0.8, "method": "probe"},
                                              "sleeves": {"value": "short", "confidence": 0.7, "method": "zero-shot"}}
    assert product.pattern == "unknown" and "predicted" not in product.attributes
    again = apply_predictions(filled, {"pattern": AttributePrediction(value="check", confidence=0.99)})
    assert again.pattern == "striped"


def test_predicted_category_brings_its_group():
    product = Product(id="2", title="Something")
    filled = apply_predictions(product, {"category": AttributePrediction(value="sneakers", confidence=0.8)})
    assert (filled.category, filled.group) == ("sneakers", "shoes")


# --- real photos, real encoder -------------------------------------------------------------------------------

def _hm_test_items(n: int = 40):
    from atelier.tools.training.probes import catalog_items

    items = catalog_items("hm", split="test")
    frame = items.frame
    picks = [i for i, g in enumerate(frame["group"]) if g in ("top", "bottom", "full-body", "shoes", "outerwear")]
    step = max(1, len(picks) // n)
    chosen = picks[::step][:n]
    return frame.iloc[chosen], [items.paths[i] for i in chosen]


def test_real_photos_get_their_group_and_colour(hm_settings):
    from atelier.tools.attributes import extract_attributes_batch

    assert AttributeExtractor().trained, "tools/probes was trained for another encoder: run `atelier train-probes`"
    frame, paths = _hm_test_items()
    preds = extract_attributes_batch([Image.open(p).convert("RGB") for p in paths])
    assert len(preds) == len(paths)
    group_hits = [p["group"].value == g for p, g in zip(preds, frame["group"])]
    colour_hits = [p["colour"].value == c for p, c in zip(preds, frame["colour"])]
    known = [p["colour"].value != "unknown" for p in preds]
    assert np.mean(group_hits) >= 0.75, np.mean(group_hits)
    assert np.mean(colour_hits) >= 0.5, np.mean(colour_hits)
    kept = [h for h, k in zip(colour_hits, known) if k]
    assert kept and np.mean(kept) >= np.mean(colour_hits)  # abstaining removes mistakes, not hits
    for p in preds:
        assert {"group", "category", "colour", "pattern", "gender"} <= set(p)
        if p["group"].value == "shoes":
            assert "sleeves" not in p


def test_fill_missing_attributes_on_an_fpi_product(hm_settings):
    from atelier.tools.attributes import fill_missing_attributes
    from atelier.tools.catalogs import CatalogOptions, read_catalog

    fpi = hm_settings.datasets / "fashion-product-images-small"
    product = next(p for p in read_catalog(fpi, "fpi", CatalogOptions(only_ids=frozenset({"7990"}))))
    assert product.pattern == "unknown" and product.colour == "navy"  # "Fila Men's Round Neck Navy Blue T-shirt"
    filled = fill_missing_attributes(product)
    assert filled.colour == "navy" and filled.category == product.category
    assert "colour" not in filled.attributes.get("predicted", {})
    assert set(filled.attributes.get("predicted", {})) <= {"pattern", "sleeves", "neckline", "length", "fit"}
    for name, pred in filled.attributes.get("predicted", {}).items():
        assert (getattr(filled, name, None) or filled.attributes[name]) == pred["value"]


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, ATELIER_HOME=str(settings.home), ATELIER_ENCODER=settings.encoder,
               ATELIER_DATASETS=str(settings.datasets))
    return subprocess.run([sys.executable, "-m", "atelier.ui.cli", "attributes", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env=env)


def test_cli_json_for_one_and_several_images_and_a_clean_error(hm_settings, tmp_path):
    _, paths = _hm_test_items(2)
    one = _cli(hm_settings, str(paths[0]), "--json")
    assert one.returncode == 0, one.stderr
    data = json.loads(one.stdout)
    assert set(data["attributes"]) >= {"category", "group", "colour", "pattern", "gender"}
    assert set(data["attributes"]["colour"]) == {"value", "confidence"}
    two = json.loads(_cli(hm_settings, str(paths[0]), str(paths[1]), "--json").stdout)
    assert isinstance(two, list) and len(two) == 2 and two[0] == data
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    failed = _cli(hm_settings, str(bad), "--json")
    assert failed.returncode != 0 and "not a readable image" in failed.stderr
    assert "Traceback" not in failed.stderr and failed.stdout == ""


def test_fill_batch_reuses_ingestion_embeddings_and_skips_complete_products(tiny_extractor):
    from atelier.tools.attributes import fill_missing_attributes_batch

    complete = Product(id="a", title="x", category="dress", group="full-body", colour="red", pattern="solid",
                       gender="women")
    bare = Product(id="b", title="y")
    shoe_group = Product(id="c", title="z", group="shoes")
    vectors = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0.2, 1, 0]], np.float32)
    out = fill_missing_attributes_batch([complete, bare, shoe_group], embeddings=vectors, extractor=tiny_extractor)
    assert out[0] is complete
    assert (out[1].group, out[1].category, out[1].attributes["sleeves"]) == ("top", "t-shirt", "long")
    assert out[2].group == "shoes" and out[2].category == "sneakers"  # the known group restricts the category
    assert "sleeves" not in out[2].attributes and "group" not in out[2].attributes["predicted"]
