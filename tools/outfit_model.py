"""Outfit compatibility: how well a candidate item goes with a partial outfit, for one target slot.

Four signals, each a score per candidate, blended after standardising them across the candidates of one
query (so their scales never need calibrating against each other):

- ``model``: a small set encoder in the spirit of OutfitTransformer (Sarkar et al., 2023, "Outfit Transformer:
  Outfit Representations for Fashion Recommendation"): a transformer over the outfit's item tokens (encoder
  vector + group/category/colour embeddings) plus a *target item token* carrying the wanted slot; its output is
  compared with each candidate's embedding. Trained on H&M baskets by ``tools.outfit_train``.
- ``cooc``: category co-occurrence lift learnt from the same baskets, smoothed toward the group-level lift
  where category pairs are rare (the baskets are few).
- ``style``: embedding similarity between the candidate's and the outfit items' description vectors.
- ``rules``: colour harmony (neutrals go with everything, tonal looks work, a few classic clashes), no two
  loud patterns, and a consistent department (women / men / kids): ``tools.outfit_rules``.

Without trained weights the blend keeps ``style`` and ``rules`` (the documented fallback).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from atelier.tools.outfit_rules import ItemFeatures, rule_score, style_score  # noqa: F401 - ItemFeatures re-exported

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "outfit_weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "outfit.pt"
VECTOR_DIM = 384
FACETS = 4

DEFAULT_BLEND = {"model": 1.0, "cooc": 0.5, "style": 0.5, "rules": 0.5}


@dataclass
class Compatibility:
    """One candidate's blended score and the raw signals behind it (``why`` texts are built from these)."""

    total: float
    parts: dict[str, float] = field(default_factory=dict)


class CooccurrenceTable(BaseModel):
    """Smoothed category lift from baskets: log((n_ab + a*L_g) / (e_ab + a)), L_g the smoothed group lift."""

    pairs: dict[str, float] = Field(default_factory=dict)  # "cat_a|cat_b" -> ordered pair count
    group_pairs: dict[str, float] = Field(default_factory=dict)
    category_group: dict[str, str] = Field(default_factory=dict)
    alpha: float = 2.0
    baskets: int = 0

    @classmethod
    def fit(cls, baskets: Sequence[Sequence[tuple[str, str]]], alpha: float = 2.0) -> "CooccurrenceTable":
        """``baskets``: lists of (category, group); only pairs of different groups count."""
        pairs: dict[str, float] = {}
        group_pairs: dict[str, float] = {}
        cat_group: dict[str, str] = {}
        for basket in baskets:
            for i, (ca, ga) in enumerate(basket):
                cat_group[ca] = ga
                for j, (cb, gb) in enumerate(basket):
                    if i == j or ga == gb:
                        continue
                    pairs[f"{ca}|{cb}"] = pairs.get(f"{ca}|{cb}", 0.0) + 1
                    group_pairs[f"{ga}|{gb}"] = group_pairs.get(f"{ga}|{gb}", 0.0) + 1
        return cls(pairs=pairs, group_pairs=group_pairs, category_group=cat_group, alpha=alpha, baskets=len(baskets))

    def model_post_init(self, _context: object) -> None:
        self._margin = _margins(self.pairs)
        self._group_margin = _margins(self.group_pairs)
        self._total = max(sum(self.pairs.values()), 1.0)
        self._group_total = max(sum(self.group_pairs.values()), 1.0)

    def group_lift(self, a: str, b: str) -> float:
        expected = self._group_margin.get(a, 0.0) * self._group_margin.get(b, 0.0) / self._group_total
        return (self.group_pairs.get(f"{a}|{b}", 0.0) + self.alpha) / (expected + self.alpha)

    def lift(self, a: ItemFeatures, b: ItemFeatures) -> float:
        prior = self.group_lift(a.group, b.group)
        expected = self._margin.get(a.category, 0.0) * self._margin.get(b.category, 0.0) / self._total
        return (self.pairs.get(f"{a.category}|{b.category}", 0.0) + self.alpha * prior) / (expected + self.alpha)

    def score(self, outfit: Sequence[ItemFeatures], candidate: ItemFeatures) -> float:
        if not outfit:
            return 0.0
        return float(np.mean([math.log(self.lift(o, candidate)) for o in outfit]))


def _margins(pairs: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, count in pairs.items():
        a = key.split("|", 1)[0]
        out[a] = out.get(a, 0.0) + count
    return out


class Vocab(BaseModel):
    """Index of every group, category, colour and department the model has embeddings for (0 = unknown).

    No price token on purpose: in the H&M sample, articles nobody bought carry an imputed type-median price,
    so a price token learns "was ever bought" rather than anything that transfers to another catalog."""

    groups: list[str]
    categories: list[str]
    colours: list[str]
    genders: list[str] = Field(default_factory=lambda: ["women", "men", "kids", "unisex"])

    def index(self, facet: str, value: str) -> int:
        values = getattr(self, facet)
        return values.index(value) + 1 if value in values else 0

    def encode(self, item: ItemFeatures) -> list[int]:
        """The token's facet indices: group, category, colour, department."""
        return [self.index("groups", item.group), self.index("categories", item.category),
                self.index("colours", item.colour), self.index("genders", item.gender)]


class OutfitConfig(BaseModel):
    """Everything needed to rebuild the set encoder; stored with its weights."""

    dim_in: int = VECTOR_DIM
    width: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    max_items: int = 8


class OutfitSetEncoder(nn.Module):
    """OutfitTransformer's target-item formulation, small: [target token | item tokens] → transformer → the
    target token's output is the embedding of "the item that completes this outfit in slot g"; candidates are
    embedded from the same token features and scored by cosine.

    Both embeddings live in the encoder's 384-d space as *residuals*: the outfit side is the mean of its item
    vectors plus a learnt correction, the candidate side its own vector plus one, both corrections starting at
    zero (as CLIP-Adapter does). An untrained model is therefore exactly the embedding-similarity baseline, and
    with ~2k training pairs the transformer only has to learn what baskets add to it."""

    def __init__(self, config: OutfitConfig, vocab: Vocab) -> None:
        super().__init__()
        d = config.width
        self.config = config
        self.item = nn.Linear(config.dim_in, d)
        self.group = nn.Embedding(len(vocab.groups) + 1, d)
        self.category = nn.Embedding(len(vocab.categories) + 1, d)
        self.colour = nn.Embedding(len(vocab.colours) + 1, d)
        self.gender = nn.Embedding(len(vocab.genders) + 1, d)
        self.target = nn.Parameter(torch.randn(d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.outfit_head = nn.Linear(d, config.dim_in)
        self.item_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.dim_in))
        for head in (self.outfit_head, self.item_head[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(20.0)))

    def tokens(self, vectors: torch.Tensor, facets: torch.Tensor) -> torch.Tensor:
        """``facets[..., 0:4]`` = group / category / colour / department indices."""
        return (self.item(vectors) + self.group(facets[..., 0]) + self.category(facets[..., 1])
                + self.colour(facets[..., 2]) + self.gender(facets[..., 3]))

    def encode_outfit(self, vectors: torch.Tensor, facets: torch.Tensor, padding: torch.Tensor,
                      target_group: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) item vectors, (B, N, 3) facets, (B, N) True where padded, (B,) slot → (B, dim)."""
        items = self.tokens(vectors, facets)
        target = (self.target + self.group(target_group)).unsqueeze(1)
        x = torch.cat([target, items], dim=1)
        mask = torch.cat([torch.zeros_like(padding[:, :1]), padding], dim=1)
        h = self.transformer(x, src_key_padding_mask=mask)[:, 0]
        keep = (~padding).unsqueeze(-1).float()
        mean = (vectors * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return F.normalize(mean + self.outfit_head(self.norm(h)), dim=-1)

    def encode_items(self, vectors: torch.Tensor, facets: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors + self.item_head(self.tokens(vectors, facets)), dim=-1)


class OutfitWeights(BaseModel):
    """The shipped file's metadata (``outfit.json`` next to ``outfit.pt``)."""

    config: OutfitConfig = Field(default_factory=OutfitConfig)
    vocab: Vocab
    cooccurrence: CooccurrenceTable
    blend: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BLEND))
    encoder: str = ""
    encoder_fingerprint: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: str = ""


@dataclass
class CompatibilityScorer:
    """Scores candidates for one slot of a partial outfit; ``model`` / ``meta`` are None for the rules fallback."""

    model: OutfitSetEncoder | None = None
    meta: OutfitWeights | None = None
    blend: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BLEND))

    @property
    def learnt(self) -> bool:
        return self.model is not None

    def _facets(self, items: Sequence[ItemFeatures]) -> torch.Tensor:
        return torch.tensor([self.meta.vocab.encode(i) for i in items], dtype=torch.long)

    @staticmethod
    def _vectors(items: Sequence[ItemFeatures]) -> torch.Tensor:
        rows = [i.text if i.text is not None else i.image for i in items]
        return torch.from_numpy(np.stack([r if r is not None else np.zeros(VECTOR_DIM, np.float32) for r in rows])
                                .astype(np.float32))

    def model_scores(self, outfit: Sequence[ItemFeatures], target_group: str,
                     candidates: Sequence[ItemFeatures]) -> np.ndarray:
        """Cosine between the target-token output and each candidate's embedding."""
        return self.model_scores_many([(outfit, target_group, candidates)])[0]

    def model_scores_many(self, queries: Sequence[tuple[Sequence[ItemFeatures], str, Sequence[ItemFeatures]]],
                          batch: int = 256) -> list[np.ndarray]:
        """``model_scores`` for many (outfit, slot, candidates) at once, in padded batches."""
        out: list[np.ndarray] = []
        max_items = self.model.config.max_items
        for start in range(0, len(queries), batch):
            chunk = queries[start:start + batch]
            n = max(1, max(min(len(o), max_items) for o, _, _ in chunk))
            vectors = torch.zeros(len(chunk), n, VECTOR_DIM)
            facets = torch.zeros(len(chunk), n, FACETS, dtype=torch.long)
            padding = torch.ones(len(chunk), n, dtype=torch.bool)
            for b, (outfit, _, _) in enumerate(chunk):
                outfit = list(outfit)[:max_items]
                if outfit:
                    vectors[b, :len(outfit)] = self._vectors(outfit)
                    facets[b, :len(outfit)] = self._facets(outfit)
                    padding[b, :len(outfit)] = False
            groups = torch.tensor([self.meta.vocab.index("groups", g) for _, g, _ in chunk])
            flat = [c for _, _, cands in chunk for c in cands]
            with torch.inference_mode():
                query = self.model.encode_outfit(vectors, facets, padding, groups)
                keys = self.model.encode_items(self._vectors(flat), self._facets(flat))
            offset = 0
            for b, (_, _, cands) in enumerate(chunk):
                out.append((keys[offset:offset + len(cands)] @ query[b]).numpy().astype(np.float64))
                offset += len(cands)
        return out

    def parts(self, outfit: Sequence[ItemFeatures], target_group: str, candidates: Sequence[ItemFeatures],
              with_model: bool = True) -> dict[str, np.ndarray]:
        """The raw signals, one array per signal, aligned with ``candidates``."""
        out = {
            "style": np.array([style_score(outfit, c) for c in candidates]),
            "rules": np.array([rule_score(outfit, c) for c in candidates]),
        }
        if self.meta is not None:
            out["cooc"] = np.array([self.meta.cooccurrence.score(outfit, c) for c in candidates])
        if with_model and self.model is not None and outfit and candidates:
            out["model"] = self.model_scores(outfit, target_group, candidates)
        return out

    def score(self, outfit: Sequence[ItemFeatures], target_group: str,
              candidates: Sequence[ItemFeatures], blend: dict[str, float] | None = None) -> list[Compatibility]:
        """Blended compatibility of each candidate: sum of weight x (signal standardised across candidates)."""
        return self.score_many([(outfit, target_group, candidates)], blend)[0]

    def score_many(self, queries: Sequence[tuple[Sequence[ItemFeatures], str, Sequence[ItemFeatures]]],
                   blend: dict[str, float] | None = None) -> list[list[Compatibility]]:
        """``score`` for several slots of one outfit at once (one batched set-encoder pass)."""
        blend = blend or self.blend
        parts = [self.parts(outfit, group, cands, with_model=False) for outfit, group, cands in queries]
        live = [i for i, (outfit, _, cands) in enumerate(queries) if outfit and cands]
        if self.model is not None and live:
            for i, scores in zip(live, self.model_scores_many([queries[i] for i in live])):
                parts[i]["model"] = scores
        out = []
        for (_, _, cands), signals in zip(queries, parts):
            total = np.zeros(len(cands))
            for name, values in signals.items():
                total += blend.get(name, 0.0) * standardise(values)
            out.append([Compatibility(float(total[i]), {n: float(v[i]) for n, v in signals.items()})
                        for i in range(len(cands))])
        return out


def standardise(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values, dtype=np.float64)


def save_weights(model: OutfitSetEncoder, meta: OutfitWeights, path: Path = DEFAULT_WEIGHTS) -> None:
    """``outfit.pt`` (state dict, float16 to stay small) + ``outfit.json`` (config, vocab, lift table, blend)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    path.with_suffix(".json").write_text(meta.model_dump_json(indent=1))


def load_scorer(path: Path = DEFAULT_WEIGHTS, encoder_fingerprint: str | None = None) -> CompatibilityScorer:
    """The trained scorer, or the rules + embeddings fallback (with a logged note) when the weights are
    missing, unreadable or were trained on another encoder's vectors."""
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        log.warning("outfit weights not found at %s: using rules + embeddings; run `atelier train-outfit`", path)
        return CompatibilityScorer()
    try:
        meta = OutfitWeights.model_validate_json(meta_path.read_text())
        model = OutfitSetEncoder(meta.config, meta.vocab)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model.eval()
    except Exception as exc:  # noqa: BLE001  (a corrupt file must not break outfit completion)
        log.warning("cannot read outfit weights %s (%s): using rules + embeddings", path, exc)
        return CompatibilityScorer()
    if encoder_fingerprint is not None and meta.encoder_fingerprint and encoder_fingerprint != meta.encoder_fingerprint:
        log.warning("outfit model was trained on encoder %s (%s), not the current one (%s): using rules, "
                    "co-occurrence and embeddings; run `atelier train-outfit` to retrain",
                    meta.encoder, meta.encoder_fingerprint, encoder_fingerprint)
        return CompatibilityScorer(None, meta, {**meta.blend, "model": 0.0})
    return CompatibilityScorer(model, meta, dict(meta.blend))


def text_space_fingerprint(encoder: object) -> str:
    """Identifies the text space the model reads: the encoder's name plus its text adapter, if any (the
    compact encoder's MiniLM vectors change only when that adapter does)."""
    name = str(getattr(encoder, "name", "unknown"))
    adapter = getattr(getattr(encoder, "weights", None), "adapter", None)
    if adapter is None:
        return name
    digest = hashlib.sha1()
    for key, value in sorted(adapter.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return f"{name}:{digest.hexdigest()[:12]}"
