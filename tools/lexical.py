"""The sparse half of hybrid search: a TF-IDF index over product documents, persisted beside the store.

Rebuilding it from every product's metadata was most of a cold ``atelier search`` (seconds at 56k products), so
it is built in the same pass as ``tools.catalog_index`` and saved in the same revision folder: the matrix, the
vocabulary and the idf weights. A query is weighted by hand exactly as ``TfidfVectorizer.transform`` would
(sublinear tf, idf, L2 norm), so loading needs no fitted scikit-learn object. Rows align with the catalog index,
whose boolean masks filter the lexical hits like the dense ones.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

PARAMS = dict(sublinear_tf=True, ngram_range=(1, 2), min_df=1, stop_words="english",
              token_pattern=r"(?u)\b[\w-]{2,}\b")


def _analyzer() -> Callable[[str], list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**PARAMS).build_analyzer()


class LexicalIndex:
    def __init__(self, matrix, vocabulary: dict[str, int], idf: np.ndarray) -> None:
        self.matrix = matrix
        self.vocabulary = vocabulary
        self.idf = idf
        self.analyze = _analyzer()

    @classmethod
    def build(cls, documents: list[str]) -> "LexicalIndex":
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not documents:
            return cls(sparse.csr_matrix((0, 0), dtype=np.float32), {}, np.zeros(0, np.float32))
        vectorizer = TfidfVectorizer(**PARAMS, dtype=np.float32)
        matrix = vectorizer.fit_transform(documents).tocsr()
        vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        return cls(matrix, vocabulary, vectorizer.idf_.astype(np.float32))

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def query_vector(self, query: str) -> np.ndarray:
        """``TfidfVectorizer.transform([query])`` as a dense vector: (1 + log tf) x idf, L2-normalised."""
        vector = np.zeros(len(self.vocabulary), dtype=np.float32)
        for term, count in Counter(self.analyze(query)).items():
            column = self.vocabulary.get(term)
            if column is not None:
                vector[column] = (1.0 + np.log(count)) * self.idf[column]
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def search(self, query: str, mask: np.ndarray | None = None, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Rows and tf-idf cosines of the top ``k`` matches among rows allowed by ``mask``, best first."""
        empty = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if not len(self) or not query.strip():
            return empty
        q = self.query_vector(query)
        if not q.any():
            return empty
        scores = np.asarray(self.matrix @ q).ravel()
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return hits, scores[hits]

    def save(self, folder: Path) -> None:
        from scipy import sparse

        sparse.save_npz(folder / "lexical.npz", self.matrix, compressed=False)
        np.save(folder / "lexical-idf.npy", self.idf)
        (folder / "lexical-vocabulary.json").write_text(json.dumps(self.vocabulary))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        from scipy import sparse

        vocabulary = json.loads((folder / "lexical-vocabulary.json").read_text())
        return cls(sparse.load_npz(folder / "lexical.npz").tocsr(), vocabulary, np.load(folder / "lexical-idf.npy"))
