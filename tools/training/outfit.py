"""Training data and training for the outfit compatibility model (``atelier train-outfit``).

The only outfit signal in our data is H&M's transactions: the same customer buying on the same day makes a
basket, a weak "bought together" signal (~4.3k baskets, ~770 usable for training once every basket that
touches a test-split article is held out). From those baskets we learn a category co-occurrence table and
train the set encoder of ``tools.outfit_model`` with OutfitTransformer's target-item objective: given the
other items of a basket and the slot of a hidden one, rank the hidden item above random items of the same
slot (InfoNCE over one positive and sampled same-slot negatives). A customer-held-out part of the training
baskets picks the epoch count and the blend weights; the final model is refit on all training baskets.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from atelier.tools.catalogs import read_catalog
from atelier.tools.encoders import Encoder, load_encoder
from atelier.tools.outfit_model import (DEFAULT_BLEND, DEFAULT_WEIGHTS, CompatibilityScorer, CooccurrenceTable,
    ItemFeatures, OutfitConfig, OutfitSetEncoder, OutfitWeights, Vocab, save_weights, standardise,
    text_space_fingerprint)
from atelier.tools.schema import Product
from atelier.tools.settings import Settings, get_settings
from atelier.tools.taxonomy import get_taxonomy

log = logging.getLogger(__name__)

SIGNALS = ("model", "cooc", "style", "rules")
BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Basket:
    """Articles one customer bought on one day (or, for pseudo-baskets, within a few days)."""

    customer: str
    day: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class FitbQuestion:
    """Fill in the blank: which of ``choices`` (the answer is ``choices[0]``) completes ``context``?"""

    context: tuple[str, ...]
    choices: tuple[str, ...]
    group: str


@dataclass
class OutfitData:
    """The H&M catalog, its test split, and its baskets split into training and held-out."""

    products: dict[str, Product]
    test_ids: frozenset[str]
    baskets: list[Basket]
    train: list[Basket]
    heldout: list[Basket]
    purchased: frozenset[str]


def load_outfit_data(datasets: Path | None = None, window_days: int = 0) -> OutfitData:
    """Read articles, the test split and baskets; ``window_days`` > 0 builds pseudo-baskets (one customer's
    purchases within that many days of the first) instead of same-day baskets."""
    datasets = datasets or get_settings().datasets
    hm = datasets / "hm"
    products = {p.id: p for p in read_catalog(hm, "hm") if isinstance(p, Product)}
    codes = {line.strip() for line in (datasets / "splits" / "hm_test_product_codes.txt").read_text().split()}
    test_ids = frozenset(pid for pid, p in products.items() if p.attributes.get("product_code") in codes)
    by_customer: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with (hm / "transactions.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["article_id"] in products:
                by_customer[row["customer_id"]].append((row["t_dat"], row["article_id"]))
    baskets = [b for customer in sorted(by_customer) for b in _group(customer, sorted(by_customer[customer]),
                                                                      window_days)]
    train = [b for b in baskets if not any(i in test_ids for i in b.items)]
    heldout = [b for b in baskets if any(i in test_ids for i in b.items)]
    purchased = frozenset(pid for rows in by_customer.values() for _, pid in rows)
    return OutfitData(products, test_ids, baskets, train, heldout, purchased)


def _group(customer: str, rows: list[tuple[str, str]], window_days: int) -> list[Basket]:
    out: list[Basket] = []
    start, items = None, []
    for day, pid in rows:
        if start is None or (date.fromisoformat(day) - date.fromisoformat(start)).days > window_days:
            if items:
                out.append(Basket(customer, start, tuple(dict.fromkeys(items))))
            start, items = day, []
        items.append(pid)
    if items:
        out.append(Basket(customer, start, tuple(dict.fromkeys(items))))
    return out


def multi_group(baskets: Sequence[Basket], products: dict[str, Product]) -> list[Basket]:
    """Baskets with items of at least two different groups (the only ones that say anything about outfits)."""
    return [b for b in baskets if len(b.items) >= 2 and len({products[i].group for i in b.items}) >= 2]


def training_pairs(baskets: Sequence[Basket], products: dict[str, Product]) -> list[tuple[tuple[str, ...], str]]:
    """(context, target) for every basket item: the context is the basket's items of *other* groups, as at
    inference time, where the target slot is empty."""
    pairs = []
    for basket in baskets:
        for target in basket.items:
            group = products[target].group
            context = tuple(i for i in basket.items if products[i].group != group)
            if context:
                pairs.append((context, target))
    return pairs


def fitb_questions(baskets: Sequence[Basket], products: dict[str, Product], answers: frozenset[str] | set[str],
                   negatives_from: Sequence[str], seed: int = 0, negatives: int = 3) -> list[FitbQuestion]:
    """One question per basket item in ``answers`` that has context of another group; negatives are drawn
    (seeded) from ``negatives_from`` items of the answer's group, never from the basket or the answer's family."""
    rng = random.Random(seed)
    by_group: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(negatives_from):
        by_group[products[pid].group].append(pid)
    out = []
    for context, target in training_pairs(baskets, products):
        if target not in answers:
            continue
        family = products[target].attributes.get("product_code")
        basket = set(context) | {target}
        pool = [p for p in by_group[products[target].group]
                if p not in basket and products[p].attributes.get("product_code") != family]
        if len(pool) < negatives:
            continue
        out.append(FitbQuestion(context, (target, *rng.sample(pool, negatives)), products[target].group))
    return out


def _cache_key(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def catalog_vectors(products: Sequence[Product], encoder: Encoder, cache_dir: Path | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Description vectors of catalog products, exactly as ingestion stores them, cached under the settings'
    cache folder. The compact encoder's raw MiniLM vectors are cached apart from its text adapter, so a
    retrained adapter costs no re-embedding."""
    cache_dir = cache_dir or get_settings().cache_dir / "outfit"
    cache_dir.mkdir(parents=True, exist_ok=True)
    ids = [p.id for p in products]
    texts = [p.search_text() for p in products]
    adapt = getattr(encoder, "adapt_texts", None)
    if adapt is not None and str(encoder.name).startswith("compact"):
        path = cache_dir / f"minilm-raw-{_cache_key(*texts)}.npy"
        if not path.is_file():
            from atelier.tools.encoders.compact import load_text_model

            progress and progress(f"embedding {len(texts)} product texts (MiniLM, cached)")
            raw = load_text_model().encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                           show_progress_bar=False)
            np.save(path, raw.astype(np.float32))
        vectors = adapt(np.load(path))
    else:
        path = cache_dir / f"text-{_cache_key(text_space_fingerprint(encoder), *texts)}.npy"
        if not path.is_file():
            progress and progress(f"embedding {len(texts)} product texts (cached)")
            np.save(path, encoder.embed_texts(texts))
        vectors = np.load(path)
    return dict(zip(ids, np.asarray(vectors, dtype=np.float32)))


@dataclass
class FeatureBank:
    """Item features for every catalog product (what the scorer reads), built once per run."""

    products: dict[str, Product]
    text: dict[str, np.ndarray]
    image: dict[str, np.ndarray]

    def features(self, pid: str) -> ItemFeatures:
        p = self.products[pid]
        return ItemFeatures(group=p.group, category=p.category, colour=p.colour, pattern=p.pattern, gender=p.gender,
                            text=self.text.get(pid), image=self.image.get(pid))


def make_vocab() -> Vocab:
    tax = get_taxonomy()
    return Vocab(groups=list(tax.groups), categories=tax.values("category"), colours=tax.values("colour"))


def question_parts(scorer: CompatibilityScorer, bank: FeatureBank,
                   questions: Sequence[FitbQuestion]) -> list[dict[str, np.ndarray]]:
    """Every signal for every question's choices (computed once, then blended many times)."""
    queries = [([bank.features(i) for i in q.context], q.group, [bank.features(i) for i in q.choices])
               for q in questions]
    parts = [scorer.parts(outfit, group, choices, with_model=False) for outfit, group, choices in queries]
    if scorer.learnt:
        for p, scores in zip(parts, scorer.model_scores_many(queries)):
            p["model"] = scores
    return parts


def fitb_accuracy(parts: Sequence[dict[str, np.ndarray]], blend: dict[str, float]) -> float:
    """Share of questions whose answer (choice 0) scores strictly highest; ties count as a 1/len share."""
    if not parts:
        return float("nan")
    hits = 0.0
    for p in parts:
        total = sum(w * standardise(p[name]) for name, w in blend.items() if name in p and w)
        total = total if isinstance(total, np.ndarray) else np.zeros(len(next(iter(p.values()))))
        best = np.flatnonzero(np.isclose(total, total.max()))
        hits += (1.0 / len(best)) if 0 in best else 0.0
    return hits / len(parts)


def tune_blend(parts: Sequence[dict[str, np.ndarray]], signals: Sequence[str] = SIGNALS) -> tuple[dict[str, float], float]:
    """Grid search of the blend weights on validation questions (the model's weight is pinned to 1 when it
    is part of the blend, so the grid only sets the others relative to it)."""
    best, best_acc = dict(DEFAULT_BLEND), -1.0
    grids = [(1.0,) if s == "model" else BLEND_GRID for s in signals]
    for combo in np.array(np.meshgrid(*grids)).T.reshape(-1, len(signals)):
        blend = dict(zip(signals, map(float, combo)))
        if not any(blend.values()):
            continue
        acc = fitb_accuracy(parts, blend)
        if acc > best_acc + 1e-9:
            best, best_acc = blend, acc
    return best, best_acc


class TrainReport(BaseModel):
    """What ``atelier train-outfit`` did and measured (validation = customer-held-out training baskets)."""

    weights: str
    size_bytes: int
    encoder: str
    baskets_train: int
    baskets_validation: int
    pairs_train: int
    epochs: int
    seconds: float
    validation: dict[str, float] = Field(default_factory=dict)
    blend: dict[str, float] = Field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimisation settings of `train_outfit` (defaults reproduce the shipped weights)."""

    epochs: int = 12
    batch: int = 128
    negatives: int = 15
    lr: float = 2e-3
    weight_decay: float = 0.05
    purchased_negative_share: float = 0.5
    validation_share: float = 0.15
    seed: int = 0
    pseudo_window_days: int = 0
    model: OutfitConfig = field(default_factory=OutfitConfig)


class _Tensors:
    """The catalog as tensors: vectors (n, 384) and facets (n, 4), indexed by product position."""

    def __init__(self, bank: FeatureBank, vocab: Vocab, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.vectors = torch.from_numpy(np.stack([bank.text[pid] for pid in self.ids]))
        self.facets = torch.tensor([vocab.encode(bank.features(i)) for i in self.ids], dtype=torch.long)


def fit_model(pairs: Sequence[tuple[tuple[str, ...], str]], bank: FeatureBank, vocab: Vocab,
              negative_pool: Sequence[str], purchased: frozenset[str], config: TrainConfig,
              stop_after: int | None = None, evaluate: Callable[[OutfitSetEncoder, int], float] | None = None
              ) -> tuple[OutfitSetEncoder, int, float]:
    """Train the set encoder for ``config.epochs`` (or stop after ``stop_after`` on the same schedule); with
    ``evaluate``, keep the best epoch's state (epoch 0 = untrained = the embedding baseline).
    Returns (model, epoch, score)."""
    epochs = config.epochs
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    ids = sorted(set(negative_pool) | {i for c, t in pairs for i in (*c, t)})
    data = _Tensors(bank, vocab, ids)
    model = OutfitSetEncoder(config.model, vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = epochs * max(1, (len(pairs) + config.batch - 1) // config.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pool_index = np.array([data.index[p] for p in negative_pool], dtype=np.int64)
    pool_groups = data.facets[torch.from_numpy(pool_index), 0].numpy()
    for gi in np.unique(pool_groups):
        members = pool_index[pool_groups == gi]
        bought = np.array([i for i in members if data.ids[i] in purchased], dtype=np.int64)
        pools[int(gi)] = (members, bought if len(bought) else members)
    pairs = [(c, t) for c, t in pairs if int(data.facets[data.index[t], 0]) in pools]
    max_items = config.model.max_items
    best_state, best_epoch, best_score = None, epochs, -1.0
    if evaluate is not None:
        model.eval()
        best_score, best_epoch = evaluate(model, 0), 0
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(1, (stop_after if stop_after is not None else epochs) + 1):
        model.train()
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), config.batch):
            batch = [pairs[j] for j in order[start:start + config.batch]]
            n = max(min(len(c), max_items) for c, _ in batch)
            ctx = torch.zeros(len(batch), n, dtype=torch.long)
            pad = torch.ones(len(batch), n, dtype=torch.bool)
            cands = np.zeros((len(batch), 1 + config.negatives), dtype=np.int64)
            for b, (context, target) in enumerate(batch):
                context = list(context)
                if len(context) > max_items:
                    context = [context[k] for k in sorted(rng.choice(len(context), max_items, replace=False))]
                ctx[b, :len(context)] = torch.tensor([data.index[i] for i in context])
                pad[b, :len(context)] = False
                t = data.index[target]
                members, bought = pools[int(data.facets[t, 0])]
                n_bought = int(round(config.negatives * config.purchased_negative_share))
                negs = np.concatenate([rng.choice(bought, n_bought), rng.choice(members, config.negatives - n_bought)])
                negs[negs == t] = rng.choice(members, int((negs == t).sum()))
                cands[b] = np.concatenate([[t], negs])
            target_group = data.facets[torch.from_numpy(cands[:, 0]), 0]
            query = model.encode_outfit(data.vectors[ctx], data.facets[ctx], pad, target_group)
            flat = torch.from_numpy(cands.reshape(-1))
            keys = model.encode_items(data.vectors[flat], data.facets[flat]).view(len(batch), -1, config.model.dim_in)
            logits = model.logit_scale.exp().clamp(max=100) * torch.einsum("bd,bkd->bk", query, keys)
            loss = F.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if evaluate is not None:
            model.eval()
            score = evaluate(model, epoch)
            if score > best_score + 1e-9:
                best_score, best_epoch = score, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, best_epoch, best_score


def train_outfit(settings: Settings | None = None, out: Path = DEFAULT_WEIGHTS, config: TrainConfig | None = None,
                 encoder: Encoder | None = None, progress: Callable[[str], None] | None = None) -> TrainReport:
    """Train the outfit model on H&M training baskets and write ``outfit.pt`` / ``outfit.json`` to ``out``."""
    settings = settings or get_settings()
    config = config or TrainConfig()
    say = progress or (lambda message: log.info(message))
    started = time.perf_counter()
    torch.set_num_threads(1)
    encoder = encoder or load_encoder(settings.encoder)
    data = load_outfit_data(settings.datasets, config.pseudo_window_days)
    products = data.products
    train_ids = [pid for pid in sorted(products) if pid not in data.test_ids]
    catalog = [products[pid] for pid in sorted(products)]
    bank = FeatureBank(products, catalog_vectors(catalog, encoder, settings.cache_dir / "outfit", say), {})
    vocab = make_vocab()
    baskets = multi_group(data.train, products)
    holdout = {c for c in {b.customer for b in baskets}
               if int(hashlib.sha1(c.encode()).hexdigest(), 16) % 1000 < config.validation_share * 1000}
    fit_baskets = [b for b in baskets if b.customer not in holdout]
    val_baskets = [b for b in baskets if b.customer in holdout]
    val_questions = [q for seed in range(5) for q in fitb_questions(
        val_baskets, products, {i for b in val_baskets for i in b.items}, train_ids, seed=seed)]
    fit_pairs = training_pairs(fit_baskets, products)
    say(f"{len(baskets)} training baskets ({len(fit_baskets)} fit, {len(val_baskets)} validation), "
        f"{len(fit_pairs)} pairs, {len(val_questions)} validation questions")
    cooc_fit = CooccurrenceTable.fit([[(products[i].category, products[i].group) for i in b.items]
                                      for b in fit_baskets])
    meta = OutfitWeights(config=config.model, vocab=vocab, cooccurrence=cooc_fit)

    def evaluate(model: OutfitSetEncoder, epoch: int) -> float:
        scorer = CompatibilityScorer(model, meta)
        acc = fitb_accuracy(question_parts(scorer, bank, val_questions), {"model": 1.0})
        if epoch % 5 == 0:
            say(f"epoch {epoch}: validation FITB (model alone) {acc:.3f}")
        return acc

    model, best_epoch, _ = fit_model(fit_pairs, bank, vocab, train_ids, data.purchased, config, evaluate=evaluate)
    parts = question_parts(CompatibilityScorer(model, meta), bank, val_questions)
    validation = {name: round(fitb_accuracy(parts, {name: 1.0}), 4) for name in SIGNALS}
    blend, blended = tune_blend(parts)
    validation["blend"] = round(blended, 4)
    fallback_blend, fallback = tune_blend(parts, ("style", "rules"))
    validation["rules+style"] = round(fallback, 4)
    say(f"best epoch {best_epoch}; validation FITB {validation}; blend {blend}")
    all_pairs = training_pairs(baskets, products)
    final, _, _ = fit_model(all_pairs, bank, vocab, train_ids, data.purchased, config, stop_after=best_epoch)
    cooc = CooccurrenceTable.fit([[(products[i].category, products[i].group) for i in b.items] for b in baskets])
    seconds = round(time.perf_counter() - started, 1)
    meta = OutfitWeights(
        config=config.model, vocab=vocab, cooccurrence=cooc, blend=blend, encoder=str(encoder.name),
        encoder_fingerprint=text_space_fingerprint(encoder),
        metrics={**{f"validation_fitb_{k}": v for k, v in validation.items()}, "epochs": best_epoch,
                 "train_seconds": seconds, "baskets": len(baskets), "pairs": len(all_pairs)},
        notes=f"fallback blend without the model: {fallback_blend}",
    )
    save_weights(final, meta, out)
    return TrainReport(weights=str(out), size_bytes=out.stat().st_size + out.with_suffix(".json").stat().st_size,
                       encoder=meta.encoder_fingerprint, baskets_train=len(fit_baskets),
                       baskets_validation=len(val_baskets), pairs_train=len(all_pairs), epochs=best_epoch,
                       seconds=seconds, validation=validation, blend=blend)
