"""The relevance gate: does the catalog have what a query asks for, or does nothing match?

One similarity threshold cannot tell "a toaster" from "a black dress": with a small text encoder both sit near
0.45 of their nearest product. In the spirit of Cosine-Adapter relevance filtering (a calibrated decision over
the similarity, not the raw cosine), the gate reads several signals and a logistic model fitted on a labelled
query set (``benchmarks/data/honesty.yaml``, dev split) turns them into P(nothing matches):

* ``best_dense`` — the best product-text or product-photo cosine of the candidate pool;
* ``margin`` — how far that stands above the catalog's *background* similarity for this query (the mean cosine
  to a fixed sample of products): every query is "close" to everything in a small space, only the margin says
  it is close to something in particular;
* ``vocab`` — the share of the query's content terms that occur anywhere in the catalog's words;
* ``head`` — whether the query's head noun is a known garment (1), a fashion word the shop may not carry (0.5)
  or neither (0);
* ``coverage`` / ``complete`` — the share of content terms the results satisfy (``tools.coverage``), and
  whether all are;
* ``lexical`` — the best keyword (tf-idf) score.

The fit is per encoder (``tools/relevance_gate.json``, keyed by the encoder's fingerprint) and re-run with one
command, ``atelier calibrate-relevance``. Without a calibration for the loaded encoder the gate falls back to
the single floor ``ATELIER_RELEVANCE_THRESHOLD`` plus full coverage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from atelier.tools.catalog_index import CatalogIndex
from atelier.tools.coverage import HEAD_KINDS, Coverage, Term, cover, stems
from atelier.tools.schema import SearchResult

CALIBRATION_FILE = Path(__file__).resolve().parent / "relevance_gate.json"
FEATURES = ("best_dense", "margin", "vocab", "head", "coverage", "complete", "lexical")
BACKGROUND_SAMPLE = 512
STRONG_KEYWORD_MATCH = 0.3


@dataclass
class CatalogProfile:
    """What the gate knows about one catalog index revision: its words (stems) and a fixed sample of its vectors
    (the index's first rows)."""

    words: set[str] | frozenset[str]
    background_text: np.ndarray
    background_image: np.ndarray
    size: int
    revision: str = ""

    @classmethod
    def from_index(cls, index: CatalogIndex, sample: int = BACKGROUND_SAMPLE) -> "CatalogProfile":
        """Read from the in-process index (its words are collected when it is built and saved with it), so a
        cold process pays nothing per product."""
        return cls(index.words, np.asarray(index.vectors["text"][:sample], np.float32),
                   np.asarray(index.vectors["image"][:sample], np.float32), len(index), index.revision)


class RelevanceSignals(BaseModel):
    best_dense: float = 0.0
    margin: float = 0.0
    vocab: float = 1.0
    head: float = 0.0
    coverage: float = 1.0
    complete: float = 1.0
    lexical: float = 0.0

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in FEATURES], np.float64)


def measure(terms: Sequence[Term], similarities: Iterable[dict[str, float]], vector: np.ndarray,
            profile: CatalogProfile, coverage: Coverage) -> RelevanceSignals:
    """The gate's signals for one query (``similarities``: each candidate's channel → similarity)."""
    best = {"text": 0.0, "image": 0.0, "lexical": 0.0}
    for sims in similarities:
        for channel in best:
            best[channel] = max(best[channel], sims.get(channel, 0.0))
    v = np.asarray(vector, np.float32)
    margins = [best[c] - float(np.mean(m @ v)) for c, m in (("text", profile.background_text),
                                                              ("image", profile.background_image)) if len(m)]
    checkable = [t for t in terms if t.kind != "size"]
    vocab = sum(bool(stems(t.text) & profile.words) for t in checkable) / len(checkable) if checkable else 1.0
    head = next((t for t in terms if t.head), None)
    head_score = 0.0 if head is None or head.kind == "word" else (0.5 if head.kind == "garment" else 1.0)
    return RelevanceSignals(best_dense=max(best["text"], best["image"]), margin=max(margins, default=0.0),
                            vocab=vocab, head=head_score, coverage=coverage.share, complete=float(coverage.complete),
                            lexical=best["lexical"])


class GateCalibration(BaseModel):
    """A fitted gate: standardise the signals, a logistic model for P(nothing matches), a threshold on it."""

    encoder: str
    fingerprint: str
    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float
    metrics: dict[str, Any] = Field(default_factory=dict)

    def probability(self, signals: RelevanceSignals) -> float:
        x = (np.array([getattr(signals, f) for f in self.features]) - self.mean) / np.asarray(self.scale)
        z = float(x @ np.asarray(self.weights) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def load_calibrations(path: Path = CALIBRATION_FILE) -> dict[str, GateCalibration]:
    if not path.is_file():
        return {}
    return {k: GateCalibration.model_validate(v) for k, v in json.loads(path.read_text()).items()}


def save_calibration(calibration: GateCalibration, path: Path = CALIBRATION_FILE) -> None:
    """Add or replace this encoder's calibration, keeping every other encoder's."""
    data = {k: v.model_dump() for k, v in load_calibrations(path).items()}
    data[calibration.fingerprint] = calibration.model_dump()
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


class RelevanceVerdict(BaseModel):
    """The gate's answer for one search.

    ``matches``: the catalog has what was asked for (every content term satisfied, signals confident).
    ``in_domain``: when it does not, whether the closest items are still worth showing as such (the query names
    a garment or carries hard filters) — "a lawnmower" shows nothing, "golf shoes" shows other shoes.
    """

    matches: bool
    in_domain: bool
    probability: float | None = None
    calibrated: bool = False
    signals: RelevanceSignals = Field(default_factory=RelevanceSignals)
    coverage: Coverage = Field(default_factory=Coverage)

    @property
    def show(self) -> bool:
        return self.matches or self.in_domain

    @property
    def unmatched(self) -> list[str]:
        return self.coverage.unmatched


class RelevanceGate:
    """The gate for one catalog and encoder: its profile (rebuilt when the index's revision moves) and its
    calibration."""

    def __init__(self, index: Callable[[], CatalogIndex], fingerprint: str | None,
                 calibrations: dict[str, GateCalibration] | None = None) -> None:
        self.index = index
        self.calibration = (calibrations if calibrations is not None else load_calibrations()).get(fingerprint or "")
        self._profile: CatalogProfile | None = None

    @property
    def profile(self) -> CatalogProfile:
        index = self.index()
        if self._profile is None or self._profile.revision != index.revision:
            self._profile = CatalogProfile.from_index(index)
        return self._profile

    def judge(self, terms: Sequence[Term], similarities: Iterable[dict[str, float]], vector: np.ndarray,
              results: Sequence[SearchResult], *, hard_filters: bool, floor: float) -> RelevanceVerdict:
        """Decide for one search. ``floor`` ≤ 0 switches the gate off (coverage is still reported)."""
        coverage = cover(terms, results)
        signals = measure(terms, similarities, vector, self.profile, coverage)
        in_domain = hard_filters or any(t.head and t.kind in HEAD_KINDS for t in terms)
        if floor <= 0 or not results:
            return RelevanceVerdict(matches=bool(results) and coverage.complete, in_domain=True, signals=signals,
                                    coverage=coverage)
        if self.calibration is None:
            dense_ok = signals.best_dense >= floor or signals.lexical >= STRONG_KEYWORD_MATCH or hard_filters
            return RelevanceVerdict(matches=dense_ok and coverage.complete, in_domain=in_domain, signals=signals,
                                    coverage=coverage)
        p = self.calibration.probability(signals)
        matches = p < self.calibration.threshold and coverage.complete
        return RelevanceVerdict(matches=matches, in_domain=in_domain, probability=round(p, 4),
                                calibrated=True, signals=signals, coverage=coverage)


class Honesty(BaseModel):
    """What the shopper must be told about one search's results; the products event and the memory carry it,
    so every front end can show it. ``match``: the results are what was asked for. Otherwise ``unmatched``
    names the request's terms the best result lacks (``sizes``: those that are sizes, which listings rarely
    give), ``head_matched`` says whether the garment itself was found, and ``refused`` that the gate found the
    request outside the catalog, so not even the closest items are shown ("a lawnmower")."""

    match: bool = True
    refused: bool = False
    terms: list[str] = Field(default_factory=list)
    head: str | None = None
    head_matched: bool = True
    unmatched: list[str] = Field(default_factory=list)
    sizes: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, verdict: RelevanceVerdict, coverage: Coverage, shown: bool) -> "Honesty":
        """``coverage``: of the results actually shown (after re-ranking and diversity); ``refused``: the gate
        found the request outside the catalog and nothing is shown."""
        return cls(match=shown and verdict.matches and coverage.complete, refused=not verdict.show,
                   terms=coverage.terms, head=coverage.head, head_matched=coverage.head_matched,
                   unmatched=coverage.unmatched, sizes=coverage.sizes)

    def note(self) -> str:
        """One line for a tool-calling model: what the results do not satisfy."""
        if self.match:
            return "These results match the request."
        missing = ", ".join(self.unmatched) or "the request as a whole"
        return f"NOT a match: no result satisfies {missing}; present them as the closest items, never as matches."
