"""Training data for the outfit model: basket pairs, FITB questions, windows, lift, and a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atelier.tools.outfit_model import CompatibilityScorer, CooccurrenceTable, ItemFeatures, OutfitConfig, OutfitWeights
from atelier.tools.schema import Product
from atelier.tools.training.outfit import (Basket, FeatureBank, TrainConfig, _group, fit_model, fitb_questions,
    make_vocab, multi_group, training_pairs)

GROUPS = {"t": ("top", "t-shirt"), "j": ("bottom", "jeans"), "s": ("shoes", "sneakers")}


def catalog(n: int = 6) -> dict[str, Product]:
    out = {}
    for key, (group, category) in GROUPS.items():
        for i in range(n):
            pid = f"{key}{i}"
            out[pid] = Product(id=pid, title=pid, group=group, category=category, gender="women",
                               attributes={"product_code": f"{key}{i // 2}"})
    return out


def test_pairs_take_context_from_other_groups_only():
    products = catalog()
    pairs = training_pairs([Basket("c", "2020-01-01", ("t0", "t2", "j0"))], products)
    assert pairs == [(("j0",), "t0"), (("j0",), "t2"), (("t0", "t2"), "j0")]
    assert multi_group([Basket("c", "d", ("t0", "t2")), Basket("c", "d", ("t0", "j0"))], products) == [
        Basket("c", "d", ("t0", "j0"))]


def test_fitb_negatives_share_the_group_and_never_come_from_the_basket_or_the_answers_family():
    products = catalog()
    questions = fitb_questions([Basket("c", "d", ("t0", "j0", "s0"))], products, {"j0"}, sorted(products), seed=1)
    assert len(questions) == 1
    q = questions[0]
    assert q.choices[0] == "j0" and q.context == ("t0", "s0") and q.group == "bottom"
    assert len(set(q.choices)) == 4 and all(products[c].group == "bottom" for c in q.choices)
    assert "j1" not in q.choices  # same product_code as the answer
    assert fitb_questions([Basket("c", "d", ("t0", "j0", "s0"))], products, {"j0"}, sorted(products), seed=1) == questions


def test_pseudo_baskets_group_purchases_within_the_window():
    rows = [("2020-01-01", "t0"), ("2020-01-03", "j0"), ("2020-02-10", "s0"), ("2020-02-10", "s0")]
    assert [b.items for b in _group("c", rows, 0)] == [("t0",), ("j0",), ("s0",)]
    assert [b.items for b in _group("c", rows, 7)] == [("t0", "j0"), ("s0",)]


def test_cooccurrence_lift_rewards_pairs_seen_in_baskets():
    table = CooccurrenceTable.fit([[("t-shirt", "top"), ("jeans", "bottom")]] * 5 + [[("t-shirt", "top"),
                                                                                       ("sneakers", "shoes")]])
    tee = ItemFeatures(group="top", category="t-shirt")
    assert table.lift(tee, ItemFeatures(group="bottom", category="jeans")) > table.lift(
        tee, ItemFeatures(group="shoes", category="sneakers"))


@pytest.fixture()
def one_thread():
    """Tiny models on a shared CPU run much faster on one thread than two contending ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_tiny_training_run_learns_what_embedding_similarity_cannot(one_thread):
    """Baskets pair t_i with j_i whose vector is unrelated to t_i's, so the untrained model (= embedding
    similarity) is at chance; training on those baskets must learn the pairing."""
    products = catalog(12)
    rng = np.random.default_rng(0)
    text = {}
    for pid in products:
        v = rng.normal(size=384)
        text[pid] = (v / np.linalg.norm(v)).astype(np.float32)
    bank = FeatureBank(products, text, {})
    pairs = training_pairs([Basket("c", "d", (f"t{i}", f"j{i}")) for i in range(12)], products)
    config = TrainConfig(epochs=200, batch=24, negatives=3, lr=3e-3, weight_decay=0.0,
                         model=OutfitConfig(width=64, heads=2, layers=1, dropout=0.0))
    meta = OutfitWeights(config=config.model, vocab=make_vocab(), cooccurrence=CooccurrenceTable())

    def hits(model) -> int:
        scorer = CompatibilityScorer(model, meta, {"model": 1.0})
        return sum(int(np.argmax(scorer.model_scores([bank.features(f"t{i}")], "bottom",
                                                     [bank.features(f"j{(i + d) % 12}") for d in range(4)])) == 0)
                   for i in range(12))

    untrained, _, _ = fit_model(pairs, bank, make_vocab(), sorted(products), frozenset(), config, stop_after=0)
    trained, _, _ = fit_model(pairs, bank, make_vocab(), sorted(products), frozenset(), config)
    assert hits(untrained) <= 6 and hits(trained) >= 10
