"""Compose each turn's search from the whole memory, not from the last message.

FashionNTM (Pal et al., ICCV 2023) reads a cascade of memory over all turns. Without training, the
same idea is a decayed weighted sum in the shared text/image space:

    q = w_c·e(constraints) + Σ_t w_d·λ_d^(T-t)·e(details_t) + Σ_a w_a·λ_a^(T-t_a)·e(anchor_a)
        - w_x·Σ e(disliked) - w_p·mean e(dismissed)

normalised, then passed to ``ProductSearch.search(query_vector=q)`` under the memory's hard filters.
``e(constraints)`` embeds the current facet constraints as words ("blue striped dress for women"), so an
overridden colour never lingers in the text; ``anchor`` vectors average a product's image and text
vectors (an uploaded photo: its image vector). Soft preferences (darker, longer, more formal) re-rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from atelier.memory.relative import preference_hints, preference_score
from atelier.memory.state import Anchor, Constraints, SessionMemory
from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product, SearchResult
from atelier.tools.vectors import unit


class CascadeWeights(BaseModel):
    """Weights of the memory cascade. Set by hand; ``bench_agent --split dev --weights ...`` compares
    alternatives on products outside the test split (docs/agent.md has the sweep)."""

    constraints: float = 1.0
    details: float = 0.6
    detail_decay: float = 0.6
    reference: float = 1.0
    liked: float = 0.6
    anchor_decay: float = 0.7
    disliked: float = 0.15
    dismissed: float = 0.3
    preference: float = 0.6


class ComposedQuery(BaseModel):
    """The search a memory asks for: text (lexical and attribute channels), filters, and the cascade vector."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    filters: SearchFilters
    components: list[dict[str, Any]] = Field(default_factory=list)
    vector: np.ndarray | None = Field(default=None, exclude=True)

    def args(self, k: int) -> dict[str, Any]:
        """The ``search_products`` tool-call arguments of this query (its cascade stays in the memory log)."""
        f = self.filters
        args: dict[str, Any] = {"query": self.text, "must": f.must, "avoid": f.avoid}
        if f.price_min is not None:
            args["price_min"] = f.price_min
        if f.price_max is not None:
            args["price_max"] = f.price_max
        if f.exclude_ids:
            args["exclude_ids"] = list(f.exclude_ids)
        args["k"] = k
        return args


def describe_constraints(constraints: Constraints) -> str:
    """Facet constraints as a short noun phrase: "blue or navy striped dress for women"."""
    must = constraints.must
    words: list[str] = []
    for facet in ("colour", "pattern"):
        if must.get(facet):
            words.append(" or ".join(must[facet]))
    noun = must.get("category") or must.get("group") or []
    if noun:
        words.append(" or ".join(noun))
    if must.get("gender"):
        words.append("for " + " or ".join(must["gender"]))
    return " ".join(words)


def request_text(memory: SessionMemory) -> str:
    """The current request as words for the coverage check: every turn's details, then the constraint phrase
    without the gender ("golf" + "shoes" → "golf shoes"; "laptop 15 inch macbook" + "bag")."""
    c = memory.constraints
    phrase = describe_constraints(Constraints(must={f: v for f, v in c.must.items() if f != "gender"}))
    return " ".join([*(d.text for d in memory.details), phrase]).strip()


VectorLookup = Callable[[Sequence[str]], dict[str, np.ndarray]]
ImageEmbedder = Callable[[Anchor], np.ndarray | None]


def compose_query(memory: SessionMemory, embed_texts: Callable[[list[str]], np.ndarray],
                  product_vectors: VectorLookup | None = None, image_vector: ImageEmbedder | None = None,
                  weights: CascadeWeights | None = None) -> ComposedQuery:
    """The memory's current search (see the module docstring for the cascade)."""
    w = weights or CascadeWeights()
    base = describe_constraints(memory.constraints)
    hints = preference_hints(memory.preferences)
    recent = [d.text for d in memory.details[-2:]]
    text = " ".join(t for t in [base, *recent, hints] if t).strip() or "fashion"
    components: list[dict[str, Any]] = []
    texts: list[tuple[str, float, dict[str, Any]]] = []
    head = " ".join(t for t in (base, hints) if t)
    if head:
        texts.append((head, w.constraints, {"source": "constraints", "text": head}))
    for detail in memory.details:
        weight = w.details * w.detail_decay ** (memory.turn - detail.turn)
        texts.append((detail.text, weight, {"source": "details", "text": detail.text, "turn": detail.turn}))
    if not texts and not memory.anchors:
        texts.append((text, 1.0, {"source": "text", "text": text}))
    total = np.zeros(0, dtype=np.float32)
    if texts:
        vectors = embed_texts([t for t, _, _ in texts])
        total = np.zeros(vectors.shape[1], dtype=np.float32)
        for (_, weight, info), vector in zip(texts, vectors):
            total += weight * vector
            components.append({**info, "weight": round(weight, 4)})
    products = [a for a in memory.anchors if a.kind == "product"]
    passed = [pid for pid in memory.dismissed[-10:] if pid not in memory.disliked]
    wanted = list(dict.fromkeys([a.id for a in products] + memory.disliked[-5:] + passed))
    stored = product_vectors(wanted) if product_vectors else {}
    for anchor in memory.anchors:
        vector = stored.get(anchor.id) if anchor.kind == "product" else (
            image_vector(anchor) if image_vector else None)
        if vector is None:
            continue
        role_weight = w.reference if anchor.role == "reference" else w.liked
        weight = role_weight * w.anchor_decay ** (memory.turn - anchor.turn)
        total = _add(total, weight, vector)
        components.append({"source": anchor.role, "kind": anchor.kind, "id": anchor.id, "weight": round(weight, 4)})
    for pid in memory.disliked[-5:]:
        if pid in stored and total.size:
            total = _add(total, -w.disliked, stored[pid])
            components.append({"source": "disliked", "id": pid, "weight": -w.disliked})
    passed_vectors = [stored[pid] for pid in passed if pid in stored]
    if passed_vectors and total.size:
        total = _add(total, -w.dismissed, np.mean([unit(v) for v in passed_vectors], axis=0))
        components.append({"source": "dismissed", "count": len(passed_vectors), "weight": -w.dismissed})
    norm = float(np.linalg.norm(total)) if total.size else 0.0
    vector = (total / norm).astype(np.float32) if norm > 1e-9 else None
    return ComposedQuery(text=text, filters=memory.filters(), components=components, vector=vector)



def _add(total: np.ndarray, weight: float, vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    if not total.size:
        total = np.zeros_like(vector)
    return total + weight * vector / max(float(np.linalg.norm(vector)), 1e-9)


def rerank(results: list[SearchResult], preferences: list[str], reference: Product | None = None,
           k: int = 10, weight: float = 0.6) -> list[SearchResult]:
    """Re-rank by soft preferences (darker / longer / more formal than the reference), keeping relevance."""
    if not preferences or not results:
        return results[:k]
    n = len(results)
    scored = []
    for i, result in enumerate(results):
        pref = preference_score(result.product, preferences, reference) if result.product else 0.0
        scored.append((1.0 - i / n + weight * float(np.clip(pref, -1.0, 1.0)), -i, result))
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    return [r for _, _, r in scored[:k]]
