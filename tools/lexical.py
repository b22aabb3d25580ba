"""The sparse half of hybrid search: a TF-IDF index over product documents, persisted beside the store.

Rebuilding it from every product's metadata was most of a cold ``atelier search`` (seconds at 56k products), so
it is built in the same pass as ``tools.catalog_index`` and saved in the same revision folder: the matrix (by
column), the vocabulary, the idf weights and the stop words. A query is analysed and weighted by hand exactly as
``TfidfVectorizer`` would (lower-case, token pattern, stop words, 1-2-grams; sublinear tf, idf, L2 norm) and
scored column by column in numpy, so loading and querying import neither scikit-learn nor scipy (seconds of a
cold start). Rows align with the catalog index, whose boolean masks filter the lexical hits like the dense ones.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

TOKEN_PATTERN = r"(?u)\b[\w-]{2,}\b"
PARAMS = dict(sublinear_tf=True, ngram_range=(1, 2), min_df=1, stop_words="english", token_pattern=TOKEN_PATTERN)


class LexicalIndex:
    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: int,
                 vocabulary: dict[str, int], idf: np.ndarray, stop_words: list[str]) -> None:
        self.indptr, self.indices, self.data, self.rows = indptr, indices, data, rows
        self.vocabulary = vocabulary
        self.idf = idf
        self.stop_words = frozenset(stop_words)
        self.token = re.compile(TOKEN_PATTERN)

    @classmethod
    def build(cls, documents: list[str]) -> "LexicalIndex":
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not documents:
            return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, {},
                       np.zeros(0, np.float32), [])
        vectorizer = TfidfVectorizer(**PARAMS, dtype=np.float32)
        matrix = vectorizer.fit_transform(documents).tocsc()
        vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        return cls(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data, len(documents),
                   vocabulary, vectorizer.idf_.astype(np.float32), sorted(vectorizer.get_stop_words() or ()))

    def __len__(self) -> int:
        return self.rows

    def analyze(self, text: str) -> list[str]:
        """``TfidfVectorizer(**PARAMS).build_analyzer()``: lower-case tokens minus stop words, then 1- and 2-grams."""
        tokens = [t for t in self.token.findall(text.lower()) if t not in self.stop_words]
        return tokens + [" ".join(pair) for pair in zip(tokens, tokens[1:])]

    def query_terms(self, query: str) -> dict[int, float]:
        """``TfidfVectorizer.transform([query])``'s non-zero columns: (1 + log tf) x idf, L2-normalised."""
        weights = {}
        for term, count in Counter(self.analyze(query)).items():
            column = self.vocabulary.get(term)
            if column is not None:
                weights[column] = (1.0 + float(np.log(count))) * float(self.idf[column])
        norm = float(np.sqrt(sum(w * w for w in weights.values())))
        return {c: w / norm for c, w in weights.items()} if norm else {}

    def search(self, query: str, mask: np.ndarray | None = None, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Rows and tf-idf cosines of the top ``k`` matches among rows allowed by ``mask``, best first."""
        terms = self.query_terms(query) if self.rows and query.strip() else {}
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = np.zeros(self.rows, dtype=np.float32)
        for column, weight in terms.items():
            start, stop = self.indptr[column], self.indptr[column + 1]
            scores[self.indices[start:stop]] += weight * self.data[start:stop]
        if mask is not None:
            scores[~mask] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return hits, scores[hits]

    def save(self, folder: Path) -> None:
        np.savez(folder / "lexical.npz", indptr=self.indptr, indices=self.indices, data=self.data, idf=self.idf)
        (folder / "lexical.json").write_text(json.dumps({"rows": self.rows, "vocabulary": self.vocabulary,
                                                         "stop_words": sorted(self.stop_words)}))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        meta = json.loads((folder / "lexical.json").read_text())
        with np.load(folder / "lexical.npz") as a:
            return cls(a["indptr"], a["indices"], a["data"], meta["rows"], meta["vocabulary"], a["idf"],
                       meta["stop_words"])
