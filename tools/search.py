"""Hybrid product search: dense product-text similarity, text→image similarity and lexical/attribute
matching, fused with reciprocal rank fusion, under hard filters pushed down to Chroma.

Obvious constraints in the query itself ("black dress under 40") become filters (``query_parser``).
A relevance gate (``tools.relevance``, calibrated per encoder in the spirit of Cosine-Adapter relevance
filtering) decides whether the catalog has what was asked for, and ``tools.coverage`` which words of the request
no result satisfies: better to say "nothing matches" or "no golf shoes; these are other shoes" than to call
junk a match. Each result says why it matched.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from atelier.tools.catalog_index import CatalogIndex, LiveIndex, index_root
from atelier.tools.coverage import Term, cover, promote, request_terms
from atelier.tools.encoders import Encoder, encoder_fingerprint, load_encoder
from atelier.tools.query_parser import SearchFilters, parse_query
from atelier.tools.relevance import RelevanceGate, RelevanceVerdict
from atelier.tools.schema import Product, SearchResult
from atelier.tools.settings import Settings, get_settings
from atelier.tools.store import Hit, ProductStore, product_metadata

Mode = Literal["dense", "hybrid"]
RRF_K = 60
COVERAGE_POOL = 50
CHANNEL_WEIGHTS = {"text": 1.0, "image": 0.6, "lexical": 0.8, "attributes": 1.0}
EXACT_ROWS = 4_000
OVERFETCH = 1.5
MAX_FETCH = 400
QUERY_CACHE = 1_024


@dataclass
class Candidate:
    id: str
    metadata: dict
    ranks: dict[str, int] = field(default_factory=dict)
    similarity: dict[str, float] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)

    def fused(self) -> float:
        return sum(CHANNEL_WEIGHTS[c] / (RRF_K + r) for c, r in self.ranks.items())


@dataclass
class SearchOutcome:
    """Results and the relevance gate's verdict: whether they match, and which request terms none satisfies."""

    results: list[SearchResult]
    verdict: RelevanceVerdict


class ProductSearch:
    """Search over one store with one encoder (the ``search_products`` tool's engine).

    Query planning (each dense channel): no filter → Chroma's unfiltered HNSW query; a filter that leaves few
    rows (≤ ``EXACT_ROWS``) or would need too deep an over-fetch (> ``MAX_FETCH``: HNSW cost grows steeply with
    k, measured 10 / 17 / 177 units for k = 100 / 300 / 1000 at 56k) → exact cosine over exactly those rows from
    the in-process vectors; a broad filter → an unfiltered HNSW query over-fetched by the inverse of the filter's
    selectivity, filtered in process. Chroma's own ``where`` filtering (SQLite before the vector search) was 70-80%
    of a search's time at 12-56k products and is no longer on the hot path.
    """

    def __init__(self, store: ProductStore, encoder: Encoder, settings: Settings | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings or get_settings()
        self.live = LiveIndex(store, index_root(self.settings))
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._gate: RelevanceGate | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ProductSearch":
        settings = settings or get_settings()
        encoder = load_encoder(settings.encoder)
        return cls(ProductStore.open(encoder.name, encoder.dim, settings), encoder, settings)

    @property
    def index(self) -> CatalogIndex:
        return self.live.get()

    def warm(self) -> None:
        """Load the index and the text tower, run one search and read one stored vector of each kind (Chroma
        loads a collection's records on first read: seconds at 56k), so no shopper pays a first-use load."""
        results = self.search("warm-up black dress", k=1, min_relevance=0.0)
        for kind in ("text", "image"):
            self.store.vectors([r.id for r in results], kind)

    def vectors(self, ids: list[str], kind: str = "image") -> dict[str, np.ndarray]:
        """Stored embeddings by id: from the in-process index, from the store for ids it does not know yet."""
        index = self.index
        found = {pid: np.asarray(index.vectors[kind][row]) for pid in ids if (row := index.row(pid)) is not None}
        missing = [pid for pid in ids if pid not in found]
        if missing:
            found.update(self.store.vectors(missing, kind))
        return found

    def embed_query(self, text: str) -> np.ndarray:
        """The query's text embedding, cached per text (shoppers and the agent repeat queries)."""
        vector = self._vectors.get(text)
        if vector is None:
            vector = self.encoder.embed_texts([text])[0]
            self._vectors[text] = vector
            if len(self._vectors) > QUERY_CACHE:
                self._vectors.popitem(last=False)
        return vector

    @property
    def gate(self) -> RelevanceGate:
        if self._gate is None:
            self._gate = RelevanceGate(lambda: self.index, encoder_fingerprint(self.encoder))
        return self._gate

    def search(self, query: str, filters: SearchFilters | None = None, k: int = 10, *, parse: bool = True,
               mode: Mode = "hybrid", query_vector: np.ndarray | None = None,
               min_relevance: float | None = None) -> list[SearchResult]:
        """The ``k`` best products for ``query`` under ``filters``; nothing when the relevance gate finds the
        request outside the catalog (``search_outcome`` also says what did not match)."""
        outcome = self.search_outcome(query, filters, k, parse=parse, mode=mode, query_vector=query_vector,
                                      min_relevance=min_relevance)
        return outcome.results if outcome.verdict.show else []

    def search_outcome(self, query: str, filters: SearchFilters | None = None, k: int = 10, *, parse: bool = True,
                       mode: Mode = "hybrid", query_vector: np.ndarray | None = None,
                       min_relevance: float | None = None, terms: list[Term] | None = None) -> SearchOutcome:
        """The ``k`` best products for ``query`` under ``filters``, and the relevance gate's verdict on them.

        ``parse`` adds the query's own constraints to ``filters``; ``mode="dense"`` uses product-text
        similarity alone (the benchmark's baseline); ``query_vector`` replaces the query's text embedding
        (composed and memory-driven searches pass their own); ``terms`` replaces the query's content terms
        (the assistant passes the whole request's, not the composed text's). Among the best
        ``COVERAGE_POOL`` candidates, those carrying more of the request's terms come first (stable, so fused
        rank decides ties): a lace bikini at rank 30 beats plain bikinis for "lace bikini".
        """
        filters = filters or SearchFilters()
        parsed = parse_query(query)
        if parse:
            filters = filters.merged(parsed.filters)
        index = self.index
        mask = index.mask(filters)
        pool = max(100, 5 * k)
        vector = query_vector if query_vector is not None else self.embed_query(query)
        candidates: dict[str, Candidate] = {}

        def add(channel: str, hits: list[Hit]) -> None:
            for rank, hit in enumerate(hits, start=1):
                cand = candidates.setdefault(hit.id, Candidate(hit.id, hit.metadata))
                cand.ranks[channel] = rank
                cand.similarity[channel] = hit.similarity

        add("text", self.nearest(index, vector, "text", filters, mask, pool))
        if mode == "hybrid":
            add("image", self.nearest(index, vector, "image", filters, mask, pool))
            rows, scores = index.lexical.search(query, mask, pool)
            add("lexical", [Hit(index.ids[r], float(s), index.metadata(int(r))) for r, s in zip(rows, scores)])
            self._rank_attributes(candidates, parsed.filters)
        ranked = sorted(candidates.values(), key=lambda c: -c.fused())[:max(k, COVERAGE_POOL)]
        products = self.products(index, [c.id for c in ranked])
        considered = [SearchResult.from_product(products[c.id], c.fused(), self._why(c, filters))
                      for c in ranked if c.id in products]
        terms = request_terms(query) if terms is None else terms
        results = promote(considered, cover(terms, considered))[:k] if terms else considered[:k]
        floor = self.settings.relevance_threshold if min_relevance is None else min_relevance
        verdict = self.gate.judge(terms, [c.similarity for c in candidates.values()], vector, results,
                                  hard_filters=bool(filters.must), floor=floor)
        return SearchOutcome(results, verdict)

    def product(self, product_id: str) -> Product | None:
        """One product by id: from the in-process index (microseconds), from the store when the index does not
        hold it yet (a Chroma read: about 2 ms alone, more with turns running beside it)."""
        return self.products(self.index, [product_id]).get(product_id)

    def products(self, index: CatalogIndex, ids: list[str]) -> dict[str, Product]:
        """Products by id from the index, or from the store for ids written since it was built."""
        rows = {pid: index.row(pid) for pid in ids}
        found = {pid: index.product(row) for pid, row in rows.items() if row is not None}
        missing = [pid for pid, row in rows.items() if row is None]
        found.update({p.id: p for p in self.store.get(missing)})
        return found

    def nearest(self, index: CatalogIndex, vector: np.ndarray, kind: str, filters: SearchFilters,
                mask: np.ndarray | None, pool: int) -> list[Hit]:
        """The ``pool`` products nearest to ``vector`` among those ``filters`` allow (see the class docstring)."""
        fetch = pool
        if mask is not None:
            allowed = int(mask.sum())
            fetch = math.ceil(pool * OVERFETCH * len(index) / max(allowed, 1))
            if allowed <= EXACT_ROWS or fetch > MAX_FETCH:
                rows, sims = index.exact(vector, kind, np.flatnonzero(mask), pool)
                return [Hit(index.ids[r], float(s), index.metadata(int(r))) for r, s in zip(rows, sims)]
        ids, sims = self.store.nearest(vector, kind, min(fetch, max(len(index), pool)))
        hits, unknown = [], []
        for pid, sim in zip(ids, sims):
            row = index.row(pid)
            if row is None:
                unknown.append((pid, sim))
            elif mask is None or mask[row]:
                hits.append(Hit(pid, sim, index.metadata(row)))
        if unknown:
            hits = sorted(hits + self._resolve(unknown, filters), key=lambda h: -h.similarity)
        return hits[:pool]

    def _resolve(self, unknown: list[tuple[str, float]], filters: SearchFilters) -> list[Hit]:
        """Hits the index does not know yet (written after it was built): metadata from the store itself."""
        metas = {p.id: product_metadata(p, "") for p in self.store.get([pid for pid, _ in unknown])}
        excluded = set(filters.exclude_ids)
        return [Hit(pid, sim, metas[pid]) for pid, sim in unknown
                if pid in metas and pid not in excluded and filters.matches(metas[pid])]

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
