"""Where composed search and recognition look for products: the Chroma store (``StoreIndex``) or an in-memory
matrix (``MatrixIndex``), behind one small protocol, both with the same filters and the same variant families."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from atelier.tools.query_parser import SearchFilters
from atelier.tools.schema import Product
from atelier.tools.store import Hit, ProductStore, product_from_metadata

if TYPE_CHECKING:
    from atelier.tools.search import ProductSearch


class CandidateIndex(Protocol):
    """Where composed search looks: the Chroma store (``StoreIndex``) or an in-memory matrix (``MatrixIndex``)."""

    def query(self, vector: np.ndarray, kind: str, filters: SearchFilters, k: int) -> list[Hit]: ...

    def vectors(self, ids: Sequence[str], kind: str) -> dict[str, np.ndarray]: ...

    def get_product(self, product_id: str) -> Product | None: ...

    def product(self, hit: Hit) -> Product: ...

    def family_members(self, family: str) -> list[str]: ...


class StoreIndex:
    """The product store, searched through ``ProductSearch``'s planner (in-process filters, exact search over
    selective ones) when an engine is given, else with filters pushed down to Chroma."""

    def __init__(self, store: ProductStore, engine: ProductSearch | None = None) -> None:
        self.store = store
        self.engine = engine

    def query(self, vector: np.ndarray, kind: str, filters: SearchFilters, k: int) -> list[Hit]:
        if self.engine is not None:
            index = self.engine.index
            return self.engine.nearest(index, vector, kind, filters, index.mask(filters), k)
        excluded = set(filters.exclude_ids)
        hits = self.store.query(vector, kind, filters.to_where(), k + len(excluded))
        return [h for h in hits if h.id not in excluded][:k]

    def vectors(self, ids: Sequence[str], kind: str) -> dict[str, np.ndarray]:
        if self.engine is not None:
            return self.engine.vectors(list(ids), kind)
        return self.store.vectors(list(ids), kind)

    def get_product(self, product_id: str) -> Product | None:
        return self.engine.product(product_id) if self.engine is not None else self.store.get_product(product_id)

    def product(self, hit: Hit) -> Product:
        if "product" in hit.metadata or self.engine is None:
            return product_from_metadata(hit.metadata)
        return self.engine.products(self.engine.index, [hit.id])[hit.id]

    def family_members(self, family: str) -> list[str]:
        """Ids of a variant family (empty for stores ingested before products carried a ``family`` field)."""
        return self.store.family_members(family)


class MatrixIndex:
    """Products with their image and text vectors held in memory: exact search, vectorised filters.

    Used by the benchmark (the whole H&M catalog, 11.8k items) and anywhere a store is not needed.
    """

    def __init__(self, products: Sequence[Product], image_vectors: np.ndarray, text_vectors: np.ndarray) -> None:
        self.products = list(products)
        self.ids = [p.id for p in self.products]
        self.position = {pid: i for i, pid in enumerate(self.ids)}
        self.matrix = {"image": np.asarray(image_vectors, np.float32), "text": np.asarray(text_vectors, np.float32)}
        self.facets = {f: np.array([getattr(p, f) for p in self.products]) for f in ("category", "group", "colour",
                                                                               "pattern", "gender", "source")}
        self.price = np.array([np.nan if p.price is None else p.price for p in self.products], np.float64)
        self._meta: dict[int, dict[str, Any]] = {}
        self.families: dict[str, list[str]] = defaultdict(list)
        for p in self.products:
            if p.family:
                self.families[p.family].append(p.id)

    def mask(self, filters: SearchFilters) -> np.ndarray:
        keep = np.ones(len(self.ids), bool)
        for facet, values in filters.must.items():
            allowed = list(values) + (["unisex"] if facet == "gender" and {"men", "women"} & set(values) else [])
            keep &= np.isin(self.facets[facet], allowed)
        for facet, values in filters.avoid.items():
            keep &= ~np.isin(self.facets[facet], list(values))
        with np.errstate(invalid="ignore"):
            if filters.price_min is not None:
                keep &= self.price >= filters.price_min
            if filters.price_max is not None:
                keep &= self.price <= filters.price_max
        for pid in filters.exclude_ids:
            if pid in self.position:
                keep[self.position[pid]] = False
        return keep

    def query(self, vector: np.ndarray, kind: str, filters: SearchFilters, k: int) -> list[Hit]:
        sims = self.matrix[kind] @ np.asarray(vector, np.float32)
        sims = np.where(self.mask(filters), sims, -np.inf)
        k = min(k, int(np.isfinite(sims).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [Hit(self.ids[i], float(sims[i]), self.metadata(i)) for i in top]

    def metadata(self, i: int) -> dict[str, Any]:
        """The filterable fields only (the product itself is looked up by ``product``)."""
        if i not in self._meta:
            p = self.products[i]
            meta: dict[str, Any] = {f: getattr(p, f) for f in self.facets}
            if p.price is not None:
                meta["price"] = p.price
            self._meta[i] = meta
        return self._meta[i]

    def vectors(self, ids: Sequence[str], kind: str) -> dict[str, np.ndarray]:
        return {pid: self.matrix[kind][self.position[pid]] for pid in ids if pid in self.position}

    def get_product(self, product_id: str) -> Product | None:
        i = self.position.get(product_id)
        return None if i is None else self.products[i]

    def product(self, hit: Hit) -> Product:
        return self.products[self.position[hit.id]]

    def family_members(self, family: str) -> list[str]:
        return list(self.families.get(family, []))
