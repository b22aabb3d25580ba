"""Hybrid product search: dense product-text similarity, text→image similarity and lexical/attribute
matching, fused with reciprocal rank fusion, under hard filters pushed down to Chroma.

Obvious constraints in the query itself ("black dress under 40") become filters (``query_parser``).
Results below a relevance floor are dropped, in the spirit of Cosine-Adapter relevance filtering:
better to say "nothing good matches" than to show junk. Each result says why it matched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from atelier.tools.encoders import Encoder, load_encoder
from atelier.tools.lexical import LexicalIndex
from atelier.tools.query_parser import SearchFilters, parse_query
from atelier.tools.schema import SearchResult
from atelier.tools.settings import Settings, get_settings
from atelier.tools.store import Hit, ProductStore, product_from_metadata

Mode = Literal["dense", "hybrid"]
RRF_K = 60
STRONG_KEYWORD_MATCH = 0.3
CHANNEL_WEIGHTS = {"text": 1.0, "image": 0.6, "lexical": 0.8, "attributes": 1.0}


@dataclass
class Candidate:
    id: str
    metadata: dict
    ranks: dict[str, int] = field(default_factory=dict)
    similarity: dict[str, float] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)

    def fused(self) -> float:
        return sum(CHANNEL_WEIGHTS[c] / (RRF_K + r) for c, r in self.ranks.items())


class ProductSearch:
    """Search over one store with one encoder (the ``search_products`` tool's engine)."""

    def __init__(self, store: ProductStore, encoder: Encoder, settings: Settings | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings or get_settings()
        self._lexical: LexicalIndex | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ProductSearch":
        settings = settings or get_settings()
        encoder = load_encoder(settings.encoder)
        return cls(ProductStore.open(encoder.name, encoder.dim, settings), encoder, settings)

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None or len(self._lexical) != self.store.count():
            self._lexical = LexicalIndex.from_store(self.store)
        return self._lexical

    def search(self, query: str, filters: SearchFilters | None = None, k: int = 10, *, parse: bool = True,
               mode: Mode = "hybrid", query_vector: np.ndarray | None = None,
               min_relevance: float | None = None) -> list[SearchResult]:
        """The ``k`` best products for ``query`` under ``filters``.

        ``parse`` adds the query's own constraints to ``filters``; ``mode="dense"`` uses product-text
        similarity alone (the benchmark's baseline); ``query_vector`` replaces the query's text embedding
        (composed and memory-driven searches pass their own).
        """
        filters = filters or SearchFilters()
        parsed = parse_query(query)
        if parse:
            filters = filters.merged(parsed.filters)
        where = filters.to_where()
        pool = max(100, 5 * k) + len(filters.exclude_ids)
        vector = query_vector if query_vector is not None else self.encoder.embed_texts([query])[0]
        excluded = set(filters.exclude_ids)
        candidates: dict[str, Candidate] = {}

        def add(channel: str, hits: list[Hit]) -> None:
            rank = 0
            for hit in hits:
                if hit.id in excluded:
                    continue
                rank += 1
                cand = candidates.setdefault(hit.id, Candidate(hit.id, hit.metadata))
                cand.ranks[channel] = rank
                cand.similarity[channel] = hit.similarity

        add("text", self.store.query(vector, "text", where, pool))
        if mode == "hybrid":
            add("image", self.store.query(vector, "image", where, pool))
            lexical = self.lexical
            add("lexical", [Hit(pid, score, lexical.metadata(pid) or {}) for pid, score in
                            lexical.search(query, filters, pool)])
            self._rank_attributes(candidates, parsed.filters)
        floor = self.settings.relevance_threshold if min_relevance is None else min_relevance
        if not filters.must and not self.relevant(candidates.values(), floor):
            return []
        ranked = sorted(candidates.values(), key=lambda c: -c.fused())
        results = []
        for cand in ranked:
            results.append(SearchResult.from_product(product_from_metadata(cand.metadata), cand.fused(),
                                                     self._why(cand, filters)))
            if len(results) == k:
                break
        return results

    @staticmethod
    def relevant(candidates: Iterable[Candidate], floor: float) -> bool:
        """Cosine-Adapter-style relevance gate: when even the best candidate's dense similarity (description
        or photo) is under ``floor`` and no keyword matched strongly, the catalog has nothing good for this query, and
        showing its nearest neighbours would be showing junk. Queries with hard constraints that matched
        (a category, a colour...) are relevant by construction and never gated."""
        if floor <= 0:
            return True
        for cand in candidates:
            dense = max(cand.similarity.get("text", 0.0), cand.similarity.get("image", 0.0))
            if dense >= floor or cand.similarity.get("lexical", 0.0) >= STRONG_KEYWORD_MATCH:
                return True
        return False

    @staticmethod
    def _rank_attributes(candidates: dict[str, Candidate], soft: SearchFilters) -> None:
        """Attribute channel: candidates ranked by how many of the query's named attributes they carry."""
        if not soft.must:
            return
        counts: dict[str, int] = defaultdict(int)
        for cand in candidates.values():
            for facet, values in soft.must.items():
                if cand.metadata.get(facet) in values:
                    counts[cand.id] += 1
                    cand.matched.append(f"{facet}={cand.metadata.get(facet)}")
        order = sorted(counts, key=lambda pid: -counts[pid])
        for rank, pid in enumerate(order, start=1):
            candidates[pid].ranks["attributes"] = rank

    @staticmethod
    def _why(cand: Candidate, filters: SearchFilters) -> str:
        parts = []
        hard = [f"{f}={cand.metadata.get(f)}" for f in filters.must]
        if hard:
            parts.append("matches " + ", ".join(hard))
        if filters.avoid:
            parts.append("avoids " + ", ".join(f"{f}≠{'/'.join(v)}" for f, v in filters.avoid.items()))
        if filters.price_min is not None or filters.price_max is not None:
            parts.append(f"price {cand.metadata.get('price')} in range")
        soft = [m for m in cand.matched if m.split("=")[0] not in filters.must]
        if soft:
            parts.append("has " + ", ".join(soft))
        labels = {"text": "description", "image": "photo", "lexical": "keywords"}
        sims = [f"{labels[c]} {cand.similarity[c]:.2f}" for c in ("text", "image", "lexical") if c in cand.similarity]
        if sims:
            parts.append("similarity: " + ", ".join(sims))
        return "; ".join(parts)
