"""Product questions: grounded listing answers with their source, "not stated" instead of guesses, photos."""

from __future__ import annotations

import pytest

from atelier.tools.schema import Product
from atelier.tools.vqa import answer_question, classify_question

HENLEY = Product(
    id="0608945001", title="BILL HENLEY 2 PK", category="top", group="top", colour="khaki", pattern="melange",
    gender="men", price=25.41, description="Short-sleeved Henley shirts in soft jersey with a round neck and "
    "button placket. Regular fit.",
    attributes={"colour_group_name": "Greenish Khaki", "graphical_appearance_name": "Slub",
                "product_type_name": "Top", "index_group_name": "Menswear"}, source="hm")
FPI_SHIRT = Product(id="15970", title="Turtle Check Men Navy Blue Shirt", category="shirt", group="top",
                    colour="navy", gender="men", description="Shirts, Navy Blue, Casual, Fall",
                    attributes={"articleType": "Shirts", "baseColour": "Navy Blue"}, source="fpi")


@pytest.mark.parametrize("question, kind", [
    ("what colour is it?", "colour"), ("Is it black?", "colour"), ("what's it made out of?", "material"),
    ("can I put it in the washing machine?", "care"), ("how much does it cost?", "price"),
    ("is it for men or women?", "gender"), ("is it a dress?", "category"), ("does it run small?", "size"),
    ("is it striped?", "pattern"), ("how does it fit?", "fit"), ("what's the neckline like?", "neckline"),
    ("what fabric is this?", "material"), ("any idea what this is made from", "material"),
])
def test_question_types(question, kind):
    assert classify_question(question)[0] == kind


def test_listing_answers_quote_their_source():
    colour = answer_question(HENLEY, "What colour is it?")
    assert colour.answerable and colour.answer == "It's greenish khaki." and colour.source == \
        "colour_group_name: Greenish Khaki"
    material = answer_question(HENLEY, "what is it made of?")
    assert material.answer == "It's made of jersey." and material.source.startswith("Short-sleeved Henley shirts")
    assert answer_question(HENLEY, "does it have short sleeves?").answer.startswith("Yes")
    assert answer_question(HENLEY, "what neckline?").answer == "It has a round neckline."
    fit = answer_question(HENLEY, "how does it fit?")
    assert "regular fit" in fit.answer and fit.source == "Regular fit."
    price = answer_question(HENLEY, "how much is it?")
    assert price.answer == "It costs 25.41." and price.source == "price: 25.41"
    assert answer_question(HENLEY, "is it for women?").answer.startswith("No, it's for men")
    assert answer_question(HENLEY, "is it black?").answer == "No, it's greenish khaki."
    assert answer_question(HENLEY, "is it a dress?").answer == "No, it's a top."


def test_unstated_facts_are_never_guessed():
    for product, question in [(HENLEY, "is it machine washable?"), (HENLEY, "how long is it?"),
                              (HENLEY, "what sizes does it come in?"), (FPI_SHIRT, "what is it made of?"),
                              (FPI_SHIRT, "how much is it?"), (FPI_SHIRT, "does it have long sleeves?"),
                              (FPI_SHIRT, "who designed it?")]:
        answer = answer_question(product, question)
        assert not answer.answerable and answer.source is None, (question, answer)
        assert answer.answer.startswith("The listing doesn't say"), answer
    cotton = answer_question(HENLEY, "is it cotton?")
    assert cotton.answer.startswith("The listing doesn't say it's cotton") and "jersey" in cotton.answer
    pattern = answer_question(FPI_SHIRT, "what pattern is it?")
    assert pattern.answerable and "check" in pattern.answer and pattern.source == FPI_SHIRT.title


def test_product_id_and_photo_answers(hm_settings):
    from PIL import Image

    from atelier.tools.store import open_store

    store = open_store(hm_settings)
    product = next(p for p in store.get([pid for pid, _, _ in store.iter_metadata()][:200])
                   if p.group == "top" and p.colour == "black")
    by_id = answer_question(product.id, "what colour is it?")
    assert by_id.answerable and "black" in by_id.answer
    photo = Image.open(product.image_path).convert("RGB")
    seen = answer_question(photo, "what colour is it?")
    assert seen.question_type == "colour" and seen.source is None and 0 < seen.confidence <= 1
    assert ("black" in seen.answer) if seen.answerable else "can't tell" in seen.answer
    material = answer_question(photo, "what is it made of?")
    assert not material.answerable and "from a photo" in material.answer
    with pytest.raises(ValueError):
        answer_question("no-such-product", "what colour is it?")


def test_photo_answers_follow_the_extracted_attributes_and_their_confidence():
    from PIL import Image

    from atelier.tools.attributes import AttributePrediction as P
    from atelier.tools.vqa import answer_from_photo

    preds = {"colour": P(value="black", confidence=0.9), "pattern": P(value="unknown", confidence=0.3),
             "category": P(value="dress", confidence=0.8), "sleeves": P(value="short", confidence=0.7)}
    blank = Image.new("RGB", (4, 4))
    colour = answer_from_photo(blank, "what colour is it?", preds)
    assert colour.answer == "It looks black." and colour.answerable and colour.confidence == pytest.approx(0.855)
    assert answer_from_photo(blank, "is it a dress?", preds).answer == "Yes, it looks like a dress."
    assert answer_from_photo(blank, "does it have long sleeves?", preds).answer == "No, it looks short-sleeved."
    unsure = answer_from_photo(blank, "is it striped?", preds)
    assert not unsure.answerable and "can't tell" in unsure.answer and unsure.confidence == 0.3
    assert not answer_from_photo(blank, "how long is it?", preds).answerable  # length not extracted: n/a
    assert not answer_from_photo(blank, "how much is it?", preds).answerable


def test_material_is_what_the_item_is_made_of_not_its_parts():
    skirt = Product(id="s", title="Skirt", description="Short, A-line skirt with buttons down the front. "
                    "Adjustable strap with a metal buckle.")
    assert not answer_question(skirt, "what is it made of?").answerable
    parka = Product(id="p", title="Parka", description="Parka in woven fabric with a zip down the front. "
                    "Lined. Padding 100% polyester.")
    answer = answer_question(parka, "what is it made of?")
    assert answer.answer == "It's made of woven fabric and polyester."
    assert answer.source == "Parka in woven fabric with a zip down the front. … Padding 100% polyester."
    jeans = Product(id="j", title="Jeans", description="5-pocket jeans in washed denim.")
    assert not answer_question(jeans, "is it machine washable?").answerable
