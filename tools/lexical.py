"""The sparse half of hybrid search: a TF-IDF index over product documents, held in memory.

Built lazily from the store and rebuilt when the store's size changes. Metadata is kept beside it so
that lexical hits can be filtered with the same ``SearchFilters`` as the dense channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from atelier.tools.query_parser import SearchFilters
from atelier.tools.store import ProductStore


class LexicalIndex:
    def __init__(self, ids: list[str], metadatas: list[dict[str, Any]], documents: list[str]) -> None:
        self.ids = ids
        self.metadatas = metadatas
        self.position = {pid: i for i, pid in enumerate(ids)}
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, stop_words="english",
                                          token_pattern=r"(?u)\b[\w-]{2,}\b")
        self.matrix = self.vectorizer.fit_transform(documents) if documents else None

    @classmethod
    def from_store(cls, store: ProductStore) -> "LexicalIndex":
        ids, metas, docs = [], [], []
        for pid, meta, doc in store.iter_metadata():
            ids.append(pid)
            metas.append(meta)
            docs.append(doc or meta.get("title", ""))
        return cls(ids, metas, docs)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, filters: SearchFilters | None = None, k: int = 100) -> list[tuple[str, float]]:
        """Top ``k`` (id, tf-idf cosine) for ``query`` among products passing ``filters``."""
        if self.matrix is None or not query.strip():
            return []
        scores = (self.matrix @ self.vectorizer.transform([query]).T).toarray().ravel()
        order = np.argsort(-scores)
        hits: list[tuple[str, float]] = []
        for index in order:
            if scores[index] <= 0 or len(hits) >= k:
                break
            if filters is None or filters.matches(self.metadatas[index]):
                hits.append((self.ids[index], float(scores[index])))
        return hits

    def metadata(self, product_id: str) -> dict[str, Any] | None:
        index = self.position.get(product_id)
        return None if index is None else self.metadatas[index]
