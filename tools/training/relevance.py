"""Calibrate the relevance gate (``tools.relevance``) for one encoder on the labelled honesty queries.

``atelier calibrate-relevance --store DIR`` runs every labelled query through hybrid search with the gate off,
records its signals, fits a logistic model of P(nothing matches) on the **dev** queries only, and picks the
threshold on dev that is most accurate while refusing at most ``max_refused`` of the in-catalog queries. The fit
is saved under the encoder's fingerprint, so retrained weights are re-calibrated by running the command again.

The decision it calibrates: *nothing matches* when P ≥ threshold or some content term is satisfied by no shown
result (``Coverage.complete``). Labels: ``nothing_matches`` from the file for the catalog it was built on; on
any other store they are recomputed from that store's own products (an in-catalog query of the full catalog
may have no product in a sample).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atelier.tools.coverage import cover, product_stems, request_terms
from atelier.tools.encoders import encoder_fingerprint
from atelier.tools.relevance import FEATURES, STRONG_KEYWORD_MATCH, GateCalibration, RelevanceSignals
from atelier.tools.schema import SearchResult
from atelier.tools.search import ProductSearch
from atelier.tools.store import product_from_metadata

DEFAULT_QUERIES = Path("benchmarks") / "data" / "honesty.yaml"
FULL_CATALOG_SIZE = 11_800
GROUPS = ("in_catalog", "out_of_domain", "not_carried")


@dataclass
class Observation:
    """One labelled query after a search with the gate off."""

    query: str
    group: str
    split: str
    nothing_matches: bool
    unmatched: list[str]
    signals: RelevanceSignals
    complete: bool
    shown: int
    hard_filters: bool

    def old_refuses(self, floor: float) -> bool:
        """The single-floor gate before calibration: refuse only when no candidate reached ``floor`` (or a
        strong keyword match) and no hard filter applied; a refusal was the only "nothing matches"."""
        if self.shown == 0:
            return True
        signals = self.signals
        return not (self.hard_filters or signals.best_dense >= floor or signals.lexical >= STRONG_KEYWORD_MATCH)


def load_queries(path: Path = DEFAULT_QUERIES) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text())["queries"]


def relabel(queries: list[dict[str, Any]], engine: ProductSearch) -> list[dict[str, Any]]:
    """Labels for ``engine``'s store: kept for the full catalog, recomputed from the store's products otherwise."""
    if engine.store.count() == FULL_CATALOG_SIZE:
        return queries
    products = [product_from_metadata(meta) for _, meta, _ in engine.store.iter_metadata()]
    results = [SearchResult.from_product(p, 0.0, "") for p in products]
    words = [product_stems(p) for p in products]
    out = []
    for row in queries:
        coverage = cover(request_terms(row["query"]), results, words)
        out.append({**row, "nothing_matches": not coverage.complete or row["group"] == "out_of_domain",
                    "unmatched": coverage.missing})
    return out


def _cache_path(engine: ProductSearch, queries: Sequence[dict[str, Any]], k: int) -> Path:
    """Observations depend on the queries, the store, the encoder and the search code: all in the key."""
    digest = hashlib.sha1(json.dumps(list(queries), sort_keys=True).encode())
    for module in ("search", "coverage", "relevance", "lexical"):
        digest.update((Path(__file__).resolve().parent.parent / f"{module}.py").read_bytes())
    digest.update(f"{engine.store.count()}:{encoder_fingerprint(engine.encoder)}:{k}".encode())
    return engine.settings.cache_dir / "honesty" / f"observations-{digest.hexdigest()[:16]}.json"


def observe(engine: ProductSearch, queries: Sequence[dict[str, Any]], k: int = 10,
            log: Callable[[str], None] | None = None) -> list[Observation]:
    """Search each query with the gate off and keep its signals and coverage (cached: calibrating and then
    benchmarking the same store searches once)."""
    path = _cache_path(engine, queries, k)
    if path.is_file():
        rows = json.loads(path.read_text())
        return [Observation(**{**r, "signals": RelevanceSignals(**r["signals"])}) for r in rows]
    out = _observe(engine, queries, k, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**asdict(o), "signals": o.signals.model_dump()} for o in out]))
    return out


def _observe(engine: ProductSearch, queries: Sequence[dict[str, Any]], k: int,
             log: Callable[[str], None] | None) -> list[Observation]:
    from atelier.tools.query_parser import parse_query

    out = []
    for i, row in enumerate(queries):
        outcome = engine.search_outcome(row["query"], k=k, min_relevance=0)
        verdict = outcome.verdict
        out.append(Observation(row["query"], row["group"], row["split"], bool(row["nothing_matches"]),
                               list(row.get("unmatched") or []), verdict.signals, verdict.coverage.complete,
                               len(outcome.results), bool(parse_query(row["query"]).filters.must)))
        if log and (i + 1) % 50 == 0:
            log(f"  searched {i + 1}/{len(queries)}")
    return out


def fit(observations: Sequence[Observation], encoder: str, fingerprint: str,
        max_refused: float = 0.02) -> GateCalibration:
    """Logistic regression on the dev observations the coverage rule leaves open (every term satisfied: "a red
    wine" or "something comfy"), then the dev threshold over all dev queries (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    dev = [o for o in observations if o.split == "dev"]
    ambiguous = [o for o in dev if o.complete]
    if len({o.nothing_matches for o in ambiguous}) < 2:
        ambiguous = dev
    x = np.array([o.signals.vector() for o in ambiguous])
    y = np.array([o.nothing_matches for o in ambiguous], int)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit((x - mean) / scale, y)
    calibration = GateCalibration(encoder=encoder, fingerprint=fingerprint, features=list(FEATURES),
                                  mean=mean.tolist(), scale=scale.tolist(), weights=model.coef_[0].tolist(),
                                  bias=float(model.intercept_[0]), threshold=0.5)
    probabilities = [calibration.probability(o.signals) for o in dev]
    candidates = sorted({round(p, 4) for p in probabilities} | {1.01})
    accuracy: dict[float, float] = {}
    for threshold in candidates:
        calibration.threshold = threshold
        scores = score(dev, calibration)
        if scores["in_catalog_refused"] <= max_refused:
            accuracy[threshold] = scores["accuracy"]
    best = [t for t, a in accuracy.items() if a == max(accuracy.values(), default=0.0)]
    calibration.threshold = _middle(best, candidates) if best else 1.01
    calibration.metrics = {"dev": score(dev, calibration), "n_dev": len(dev), "max_refused": max_refused}
    return calibration


def _middle(best: list[float], candidates: list[float]) -> float:
    """The middle of the equally accurate dev thresholds: the lowest would refuse every borderline in-catalog
    query, the highest let every borderline junk query through. On a contiguous plateau its midpoint, else the
    best threshold nearest to it."""
    low, high = min(best), max(best)
    mid = (low + high) / 2
    if all(c in best for c in candidates if low <= c <= high):
        return round(mid, 4)
    return min(best, key=lambda t: abs(t - mid))


def decide(observation: Observation, calibration: GateCalibration | None, floor: float = 0.285,
           coverage: bool = True) -> bool:
    """"Nothing matches" for one observation: the calibrated gate plus coverage; without a calibration the
    single floor plus coverage (what an uncalibrated encoder gets); with ``coverage=False`` and no calibration,
    the single floor alone (the behaviour before issue 17: whatever came back was presented as matches)."""
    if calibration is None:
        return observation.old_refuses(floor) or (coverage and not observation.complete)
    return calibration.probability(observation.signals) >= calibration.threshold or not observation.complete


def score(observations: Sequence[Observation], calibration: GateCalibration | None, floor: float = 0.285,
          coverage: bool = True) -> dict[str, float]:
    """Accuracy of the "nothing matches" decision overall and per group, and the in-catalog refusal rate."""
    decisions = [decide(o, calibration, floor, coverage) for o in observations]
    right = [d == o.nothing_matches for d, o in zip(decisions, observations)]
    out: dict[str, float] = {"accuracy": float(np.mean(right)) if right else float("nan"), "n": len(right)}
    for group in GROUPS:
        hits = [r for r, o in zip(right, observations) if o.group == group]
        out[group] = float(np.mean(hits)) if hits else float("nan")
    carried = [d for d, o in zip(decisions, observations) if not o.nothing_matches]
    out["in_catalog_refused"] = float(np.mean(carried)) if carried else 0.0
    return out


def calibrate(engine: ProductSearch, path: Path = DEFAULT_QUERIES, max_refused: float = 0.02,
              log: Callable[[str], None] = print) -> tuple[GateCalibration, list[Observation]]:
    """Observe every labelled query on ``engine``'s store and fit the gate for its encoder."""
    queries = relabel(load_queries(path), engine)
    log(f"{len(queries)} labelled queries, store of {engine.store.count()} products, encoder {engine.encoder.name}")
    observations = observe(engine, queries, log=log)
    calibration = fit(observations, engine.encoder.name, encoder_fingerprint(engine.encoder), max_refused)
    calibration.metrics["held_out"] = score([o for o in observations if o.split == "held_out"], calibration)
    calibration.metrics["store_size"] = engine.store.count()
    return calibration, observations
