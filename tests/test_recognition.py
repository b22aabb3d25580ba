"""Recognising catalog items in uploads, variant families, and the colour-blind (shape) channel of composed search."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from atelier.tools.candidates import MatrixIndex
from atelier.tools.catalogs import CatalogOptions, infer_family, read_catalog
from atelier.tools.composed import ComposedSearch, Reference
from atelier.tools.recognition import Match, Thresholds, Tier, strip_border
from atelier.tools.schema import Product
from atelier.tools.taxonomy import get_taxonomy
from atelier.tools.variants import fit_projection


def test_strip_border_removes_a_coloured_frame_but_keeps_white_margins():
    photo = Image.new("RGB", (60, 90), (255, 255, 255))
    photo.paste((200, 20, 20), (15, 20, 45, 70))
    framed = ImageOps.expand(photo, border=9, fill=(0, 0, 0))
    assert strip_border(framed).size == (60, 90)
    assert strip_border(photo).size == (60, 90)


def test_strip_border_keeps_a_light_grey_studio_background():
    for grey in (195, 222):
        photo = Image.new("RGB", (256, 384), (grey, grey, grey - 3))
        photo.paste((250, 250, 250), (30, 60, 226, 330))
        photo.paste((30, 30, 90), (60, 200, 200, 330))
        assert strip_border(photo).size == (256, 384)
    framed = ImageOps.expand(photo.resize((128, 192)), border=12, fill=(128, 128, 128))
    assert strip_border(framed).size == (128, 192), "inside a grey frame, the grey studio background stays"


def test_a_textureless_photo_is_recognised_by_its_pixels_when_geometry_has_too_few_corners():
    from atelier.tools.recognition import identical, keypoints, verify

    sock = Image.new("RGB", (256, 384), (255, 255, 255))
    sock.paste((10, 10, 10), (60, 60, 200, 330))
    shorter = Image.new("RGB", (256, 384), (255, 255, 255))
    shorter.paste((10, 10, 10), (60, 60, 200, 290))
    upload = keypoints(sock.resize((128, 192)))
    assert verify(upload, keypoints(sock))[0] < min(t.inliers for t in Thresholds.load().tiers)
    assert identical(upload.rgb, keypoints(sock).rgb)
    assert not identical(upload.rgb, keypoints(shorter).rgb)


def test_thresholds_accept_only_verified_matches():
    t = Thresholds(tiers=[Tier(inliers=15, correlation=0.3, colour_difference=10.0)])
    assert t.accepts(Match(id="a", similarity=0.5, inliers=40, correlation=0.9, colour_difference=4.0))
    assert not t.accepts(Match(id="b", similarity=0.9, inliers=40, correlation=0.9, colour_difference=30.0))
    assert not t.accepts(Match(id="c", similarity=0.9, inliers=9, correlation=0.9, colour_difference=4.0))
    assert t.accepts(Match(id="d", similarity=0.9, inliers=2, correlation=0.1, colour_difference=90.0, identical=True))


def test_a_second_tier_trades_corners_for_photometric_agreement():
    t = Thresholds(tiers=[Tier(inliers=20, correlation=0.2, colour_difference=6.0),
                          Tier(inliers=6, correlation=0.8, colour_difference=4.0)])
    plain_small_screenshot = Match(id="a", similarity=0.8, inliers=9, correlation=0.94, colour_difference=2.3)
    sibling_colour = Match(id="b", similarity=0.8, inliers=9, correlation=0.94, colour_difference=14.0)
    loose_fit = Match(id="c", similarity=0.8, inliers=9, correlation=0.5, colour_difference=2.3)
    assert t.accepts(plain_small_screenshot)
    assert not t.accepts(sibling_colour) and not t.accepts(loose_fit)
    assert not Thresholds(tiers=t.tiers[:1]).accepts(plain_small_screenshot)


# --- families ----------------------------------------------------------------------------------------------------

def test_family_is_inferred_from_title_without_colour_and_pattern_words():
    tax = get_taxonomy()
    navy = infer_family("Nike Men Navy Blue Striped Tee", "t-shirt", tax)
    white = infer_family("Nike Men White Tee", "t-shirt", tax)
    assert navy == white == "t-shirt:nike men tee"
    assert infer_family("Nike Men White Tee", "dress", tax) != white
    assert Product(id="1", title="x", attributes={"product_code": "0706016"}).family == "0706016"
    assert Product(id="1", title="x").family is None


@pytest.mark.parametrize("mapping, expected", [
    ({}, ["given-7", "t-shirt:acme tee", "t-shirt:acme tee"]),                     # a family column wins
    ({"family": "infer"}, ["t-shirt:acme tee"] * 3),                             # always inferred
    ({"family": "none"}, [None, None, None]),                                    # no families
    ({"family": "line"}, ["L1", "L1", "t-shirt:acme tee"]),                      # another column
])
def test_generic_catalog_families_follow_the_mapping(tmp_path, mapping, expected):
    path = tmp_path / "shop.csv"
    path.write_text("id,title,category,family,line\n1,Acme Red Tee,t-shirt,given-7,L1\n"
                    "2,Acme Blue Tee,t-shirt,,L1\n3,Acme Tee,t-shirt,,\n")
    products = list(read_catalog(path, "generic", CatalogOptions(mapping=mapping)))
    assert [p.family for p in products] == expected
    assert all("line" not in p.attributes for p in products) or mapping.get("family") != "line"


def _family_index():
    """Four dresses and a skirt: the reference r (red, family F), its black sibling s (same shape, a less similar
    photo than the black look-alike o of another shape), a blue sibling b and a black skirt k."""
    rows = [("r", "red", "F", "dress"), ("s", "black", "F", "dress"), ("o", "black", "G", "dress"),
            ("b", "blue", "F", "dress"), ("k", "black", "H", "skirt")]
    products = [Product(id=i, title=f"Dress {i}", category=cat, colour=c, gender="women", group="full-body",
                        attributes={"family": f}) for i, c, f, cat in rows]
    images = np.array([[1, 1, 0, 0, 0], [-1, 1, 0, 0, 0], [0.9, 0.3, 0.8, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 1, 0]],
                      np.float32)  # axis 0: red vs black; axes 1-3: shape; axis 4: where the words point
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    return MatrixIndex(products, images, images.copy())


class _Words:
    """A stand-in text encoder: every description maps to the same direction."""

    def embed_texts(self, texts):
        return np.tile(np.array([0, 0, 0, 0, 1], np.float32), (len(texts), 1))


def test_family_members_that_satisfy_the_change_rank_first():
    index = _family_index()
    assert sorted(index.family_members("F")) == ["b", "r", "s"]
    with_families = ComposedSearch(index, _Words(), recognise=False, projection=None)
    results = with_families.search("r", "in black", k=3)
    assert [r.id for r in results][:2] == ["s", "o"]
    assert "same piece" in results[0].why
    without = ComposedSearch(index, _Words(), recognise=False, families=False, projection=None)
    assert [r.id for r in without.search("r", "in black", k=3)][0] == "o"


# --- colour-blind ranking for photos that are no catalog item ------------------------------------------------------

def test_variant_projection_removes_what_siblings_differ_in():
    rng = np.random.default_rng(0)
    shape = rng.normal(size=(40, 8)).astype(np.float32)
    colour_axis = np.zeros(8, np.float32)
    colour_axis[0] = 1.0
    vectors = np.concatenate([shape + 3 * colour_axis, shape - 3 * colour_axis])
    families = [f"f{i}" for i in range(40)] * 2
    projection = fit_projection(vectors, families, k=1)
    assert abs(float(projection.directions[0] @ colour_axis)) > 0.99
    a, b = projection.apply(vectors[[0, 40]])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)


def test_a_photo_reference_keeps_its_shape_when_the_colour_changes():
    index = _family_index()
    projection = fit_projection(index.matrix["image"][[0, 1]], ["F", "F"], k=1)
    photo = Reference(kind="photo", attributes={"category": "dress", "colour": "red", "gender": "women"},
                      vector=index.matrix["image"][0].copy())
    index.matrix["image"][0] = 0  # the photo is not in the catalog
    shape = ComposedSearch(index, _Words(), recognise=False, families=False, projection=projection)
    plain = ComposedSearch(index, _Words(), recognise=False, families=False, projection=None)
    change = "same dress in black"
    assert [r.id for r in shape.search(photo, change, k=2)][0] == "s"
    assert [r.id for r in plain.search(photo, change, k=2)][0] == "o"
    assert "shape similarity" in shape.search(photo, change, k=1)[0].why


# --- real H&M photos against the sample store ------------------------------------------------------------------------

def _sample_products(settings, n: int = 3) -> list[Product]:
    from atelier.tools.store import open_store

    products = [p for p in open_store(settings).get([pid for pid, _, _ in open_store(settings).iter_metadata()][:400])
                if p.group in ("top", "full-body", "bottom")]
    return products[::max(1, len(products) // n)][:n]


def _screenshot(photo: Image.Image) -> Image.Image:
    """A typical screenshot of a product page: downscaled, slightly rotated, framed, recompressed."""
    import io

    small = photo.convert("RGB").resize((photo.width * 2 // 3, photo.height * 2 // 3))
    framed = ImageOps.expand(small.rotate(2, expand=True, fillcolor=(255, 255, 255)), border=8, fill=(0, 0, 0))
    buffer = io.BytesIO()
    framed.save(buffer, "JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_screenshots_of_catalog_photos_are_recognised_and_unknown_garments_are_not(hm_settings):
    from atelier.tools.candidates import StoreIndex
    from atelier.tools.encoders import load_encoder
    from atelier.tools.recognition import Recogniser
    from atelier.tools.store import open_store

    recogniser = Recogniser(StoreIndex(open_store(hm_settings)), load_encoder())
    for product in _sample_products(hm_settings):
        photo = _screenshot(Image.open(product.image_path))
        found = recogniser.recognise(photo)
        assert found.recognised and found.product.id == product.id, (product.id, found.match)
        held_out = recogniser.recognise(photo, exclude_family=product.family)
        assert not held_out.recognised, (product.id, held_out.match)


def test_a_catalog_photo_is_recognised_from_its_pixels_with_the_same_answer_and_few_verifications(hm_settings,
                                                                                                   monkeypatch):
    from atelier.tools import recognition
    from atelier.tools.candidates import StoreIndex
    from atelier.tools.encoders import load_encoder
    from atelier.tools.store import open_store

    recogniser = recognition.Recogniser(StoreIndex(open_store(hm_settings)), load_encoder())
    verified: list[int] = []
    real_verify = recognition.verify
    monkeypatch.setattr(recognition, "verify", lambda q, c: verified.append(1) or real_verify(q, c))
    for product in _sample_products(hm_settings):
        photo = Image.open(product.image_path).convert("RGB")
        verified.clear()
        everything = recogniser.candidates(photo)
        full = len(verified)
        verified.clear()
        found = recogniser.recognise(photo)
        assert found.recognised and found.product.id == product.id
        assert found.match == everything[0] and found.match.identical
        assert len(verified) == sum(m.identical for m in everything) < full == len(everything)


def test_channel_min_and_a_precomputed_query_lab_change_nothing():
    from atelier.tools.recognition import channel_min, photometric

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    assert np.array_equal(channel_min(rgb), rgb.min(axis=2))
    photo = Image.new("RGB", (64, 96), (255, 255, 255))
    photo.paste((120, 40, 30), (10, 10, 50, 80))
    from atelier.tools.recognition import keypoints

    query, candidate = keypoints(photo), keypoints(photo.rotate(3, fillcolor=(255, 255, 255)))
    shift = np.float32([[1, 0, 1.5], [0, 1, -2.0]])
    assert photometric(query.rgb, candidate.rgb, shift) == photometric(query.rgb, candidate.rgb, shift, query.lab)
    same = photometric(query.rgb, query.rgb, np.float32([[1, 0, 0], [0, 1, 0]]), query.lab)
    assert same[0] == pytest.approx(1.0) and same[1] == 0.0


def test_calibration_adds_a_tier_only_where_it_raises_recall_at_the_target_precision():
    from atelier.tools.training.recognition import Query, choose

    def match(pid, inliers, correlation, difference):
        return Match(id=pid, similarity=0.8, inliers=inliers, correlation=correlation, colour_difference=difference)

    queries = []
    for i in range(60):  # prints: many corners
        queries.append(Query(id=f"p{i}", family=f"f{i}", matches=[match(f"p{i}", 80, 0.6, 5.0), match("x", 5, 0.1, 30)]))
        queries.append(Query(id=f"p{i}", family=f"f{i}", held_out="item", matches=[match(f"s{i}", 80, 0.6, 25.0)]))
    for i in range(60, 100):  # plain garments in small screenshots: few corners, close pixels
        queries.append(Query(id=f"p{i}", family=f"f{i}", matches=[match(f"p{i}", 7, 0.95, 2.0), match("x", 3, 0.2, 30)]))
        queries.append(Query(id=f"p{i}", family=f"f{i}", held_out="family", matches=[match("y", 10, 0.7, 4.0)]))
    thresholds, scores = choose(queries, {}, target=0.995)
    assert scores.precision == 1.0 and scores.recall == 1.0
    assert len(thresholds.tiers) == 2
    assert len(choose(queries, {}, target=0.995, max_tiers=3)[0].tiers) == 2, "a third tier adds nothing here"
    one_tier, single = choose(queries, {}, target=0.995, max_tiers=1)
    assert single.recall == 0.6 and single.precision == 1.0


def test_the_coarse_check_never_rejects_what_the_full_comparison_accepts():
    from atelier.tools.recognition import _coarse_difference, garment_difference, keypoints
    from atelier.tools.training.recognition import degrade

    rng = np.random.default_rng(3)
    pairs = 0
    for i in range(40):
        photo = Image.new("RGB", (256, 384), (255, 255, 255))
        photo.paste(tuple(int(c) for c in rng.integers(0, 200, 3)), (40 + i, 50, 200, 300 + i))
        photo.paste(tuple(int(c) for c in rng.integers(0, 255, 3)), (80, 100, 120 + i, 160))
        catalog = keypoints(photo).rgb
        for upload in (photo.resize((128, 192)), photo.resize((200, 300)), degrade(photo, rng)):
            query = keypoints(upload).rgb
            full = garment_difference(query, catalog)
            assert _coarse_difference(query, catalog) <= full + 0.5, "a lower bound, up to resampling"
            pairs += 1
    other = Image.new("RGB", (256, 384), (255, 255, 255))
    other.paste((10, 120, 10), (40, 50, 200, 300))
    assert _coarse_difference(keypoints(other).rgb, keypoints(photo).rgb) > 4.0
    assert pairs == 120


def test_items_listed_with_the_same_photo_count_as_the_item():
    from atelier.tools.training.recognition import Query, same_photo_groups, score

    vectors = np.eye(4, dtype=np.float32)
    vectors[3] = vectors[1]
    twins = same_photo_groups(["a", "b", "c", "d"], vectors)
    assert twins == {"b": ["d"], "d": ["b"]}
    verified = Match(id="d", similarity=0.9, inliers=200, correlation=0.97, colour_difference=2.0)
    t = Thresholds(tiers=[Tier(inliers=20, correlation=0.2, colour_difference=6.0)])
    as_itself = Query(id="b", family="f", same_photo=twins["b"], matches=[verified])
    assert score([as_itself], t, {}).precision == 1.0 and score([as_itself], t, {}).recall == 1.0
    other = Query(id="c", family="g", matches=[verified])
    assert score([other], t, {}).precision == 0.0
