"""Calibrated attribute heads over image features, and the small files that ship them.

A *head* turns one image's features into a probability per class of one attribute. Four kinds exist:
``probe`` (multinomial logistic regression on the shared-space image embedding: a linear probe, trained on
catalog labels of non-test items), ``zero-shot`` (cosine to prompt-ensemble text embeddings, CLIP-style: only
its temperature is fitted), and for colour ``pixels`` (logistic regression on a non-white HSV histogram) and
``fusion`` (the histogram next to the embedding).
Every head carries a temperature fitted on a held-out non-test slice (Guo et al. 2017, temperature scaling) and
a confidence floor below which the extractor answers "unknown".

Probes only make sense for the encoder they were trained with, so the set records the encoder's fingerprint;
``tools.attributes`` falls back to zero-shot when it does not match the loaded encoder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

PROBES_DIR = Path(__file__).resolve().parent
DEFAULT_PROBES = PROBES_DIR / "probes.json"
NEVER = 1.01  # a floor no probability reaches
HEAD_KINDS = ("probe", "zero-shot", "pixels", "fusion")


class Head(BaseModel):
    """One calibrated classifier: ``softmax((x @ W.T + b) / temperature)`` over ``classes``.

    For zero-shot heads ``W`` holds the class prompt embeddings and ``b`` is zero, so the logits are cosines.
    """

    model_config = {"arbitrary_types_allowed": True}

    attribute: str
    kind: str
    classes: list[str]
    inputs: tuple[str, ...] = ("embedding",)
    temperature: float = 1.0
    threshold: float = 0.5
    metrics: dict[str, float] = Field(default_factory=dict)
    weight: np.ndarray = Field(exclude=True)
    bias: np.ndarray = Field(exclude=True)

    def features(self, inputs: dict[str, np.ndarray | None]) -> np.ndarray | None:
        """This head's input: the named feature blocks side by side (``None`` when one is missing)."""
        blocks = [inputs.get(name) for name in self.inputs]
        if any(b is None for b in blocks):
            return None
        return np.hstack([np.atleast_2d(np.asarray(b, np.float32)) for b in blocks])

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self.weight.T + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x) / self.temperature)

    @property
    def key(self) -> str:
        return f"{self.attribute}/{self.kind}"


class HeadSet(BaseModel):
    """Every head of one encoder, and which kind each attribute uses by default."""

    model_config = {"arbitrary_types_allowed": True}

    encoder: str = ""
    fingerprint: str = ""
    heads: dict[str, Head] = Field(default_factory=dict)
    default: dict[str, str] = Field(default_factory=dict)
    notes: dict[str, object] = Field(default_factory=dict)

    def add(self, head: Head) -> None:
        self.heads[head.key] = head

    def get(self, attribute: str, kind: str | None = None) -> Head | None:
        kind = kind or self.default.get(attribute)
        return self.heads.get(f"{attribute}/{kind}") if kind else None

    def save(self, path: Path = DEFAULT_PROBES) -> None:
        """``probes.json`` (classes, temperatures, thresholds, metrics) + ``probes.npz`` (float16 weights)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for key, head in self.heads.items():
            arrays[f"{key}/weight"] = head.weight.astype(np.float16)
            arrays[f"{key}/bias"] = head.bias.astype(np.float32)
        meta = {"encoder": self.encoder, "fingerprint": self.fingerprint, "default": self.default,
                "notes": self.notes, "heads": {k: h.model_dump() for k, h in self.heads.items()}}
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
        path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path = DEFAULT_PROBES) -> "HeadSet":
        meta = json.loads(path.read_text())
        with np.load(path.with_suffix(".npz")) as arrays:
            heads = {k: Head(**spec, weight=arrays[f"{k}/weight"].astype(np.float32),
                             bias=arrays[f"{k}/bias"].astype(np.float32))
                     for k, spec in meta["heads"].items()}
        return cls(encoder=meta["encoder"], fingerprint=meta["fingerprint"], heads=heads,
                   default=meta["default"], notes=meta.get("notes", {}))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (a 1-d search on log T)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), labels]))

    return float(np.exp(minimize_scalar(nll, bounds=(-6.0, 4.0), method="bounded").x))


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target: float, min_kept: int = 20) -> float:
    """The lowest confidence floor at which the predictions kept reach ``target`` precision on held-out data.

    When no floor reaches it the head is not trustworthy at any confidence: the floor is set above 1, so the
    attribute is always reported as "unknown" rather than guessed.
    """
    order = np.argsort(-confidence)
    conf, hits = confidence[order], correct[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    ok = np.flatnonzero((precision >= target) & (np.arange(1, len(hits) + 1) >= min_kept))
    if ok.size:
        return float(round(conf[ok[-1]], 4))
    return NEVER


def file_fingerprint(path: Path, salt: str = "") -> str:
    digest = hashlib.sha1(salt.encode())
    digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
