"""The embedding fallback: a message no rule decides is matched to the nearest intent exemplar
(``prompts/intents.yaml``) by MiniLM cosine similarity (``load_encoder().embed_texts``), above a floor."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EMBEDDING_FLOOR = 0.62


class ExemplarClassifier:
    """Nearest exemplar wins; the encoder loads on first use and its absence leaves the rules alone."""

    def __init__(self, exemplars: dict[str, list[str]], encoder: Any | None = None, enabled: bool = True) -> None:
        self.exemplars = exemplars
        self.enabled = enabled
        self._encoder = encoder
        self._vectors: np.ndarray | None = None
        self._labels: list[str] = []

    def classify(self, text: str) -> tuple[str, float]:
        """Nearest intent by exemplar similarity, with its cosine (("search", 0.0) without an encoder)."""
        vectors = self._exemplar_vectors()
        encoder = self._get_encoder()
        if vectors is None or encoder is None:
            return "search", 0.0
        query = encoder.embed_texts([text])[0]
        sims = vectors @ query
        best = int(np.argmax(sims))
        return self._labels[best], float(sims[best])

    def _get_encoder(self) -> Any | None:
        if self._encoder is None and self.enabled:
            try:
                from atelier.tools.encoders import load_encoder

                self._encoder = load_encoder()
            except Exception as exc:  # noqa: BLE001 - the rules still work without embeddings
                log.warning("intent embeddings unavailable (%s); rules only", exc)
                self.enabled = False
        return self._encoder

    def _exemplar_vectors(self) -> np.ndarray | None:
        if self._vectors is None:
            encoder = self._get_encoder()
            if encoder is None:
                return None
            labels, texts = [], []
            for intent, phrases in self.exemplars.items():
                labels.extend([intent] * len(phrases))
                texts.extend(phrases)
            self._labels = labels
            self._vectors = encoder.embed_texts(texts)
        return self._vectors
