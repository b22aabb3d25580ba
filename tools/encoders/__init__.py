"""Encoders that map product text and product images into one shared, L2-normalised space.

Built by name from a registry, in the spirit of open_clip's ``factory.py``: ``load_encoder("compact")``
is the offline default; ``load_encoder("open_clip:ViT-B-32:laion2b_s34b_b79k")`` or
``load_encoder("open_clip:hf-hub:Marqo/marqo-fashionSigLIP")`` use any open_clip model, from a hub or a
local checkpoint file. Everything outside ``benchmarks/`` gets its encoder from ``load_encoder``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from atelier.tools.errors import UnavailableError


@runtime_checkable
class Encoder(Protocol):
    """What every encoder offers. Both methods return float32 arrays of shape (n, dim), rows L2-normalised."""

    name: str
    dim: int

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...


EncoderFactory = Callable[[str], Encoder]
_REGISTRY: dict[str, EncoderFactory] = {}
_LOADED: dict[str, Encoder] = {}


class EncoderError(UnavailableError):
    """An encoder could not be built; the message says what to do."""

    code = "encoder_unavailable"


def register_encoder(prefix: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Register a factory for names equal to ``prefix`` or starting with ``prefix:``.

    The factory receives the part after ``prefix:`` (or "" for the bare name).
    """

    def decorator(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[prefix] = factory
        return factory

    return decorator


def available_encoders() -> list[str]:
    _import_builtin()
    return sorted(_REGISTRY)


def load_encoder(name: str | None = None) -> Encoder:
    """Build (once per process) the encoder called ``name`` (default: ``ATELIER_ENCODER``)."""
    if name is None:
        from atelier.tools.settings import get_settings

        name = get_settings().encoder
    if name in _LOADED:
        return _LOADED[name]
    _import_builtin()
    prefix, _, rest = name.partition(":")
    factory = _REGISTRY.get(prefix)
    if factory is None:
        raise EncoderError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}")
    encoder = factory(rest)
    _LOADED[name] = encoder
    return encoder


def encoder_fingerprint(encoder: Encoder) -> str:
    """Identifies what an encoder computes: its name plus its weights file when it has one, else a probe
    embedding. Stored vectors carry it, so retrained weights re-embed the catalog on the next ingest."""
    weights = getattr(encoder, "weights_path", None)
    digest = hashlib.sha1(encoder.name.encode())
    if weights is not None and Path(weights).is_file():
        digest.update(Path(weights).read_bytes())
    else:
        probe = Image.new("RGB", (64, 96), (200, 30, 40))
        digest.update(np.round(encoder.embed_images([probe]), 3).tobytes())
        digest.update(np.round(encoder.embed_texts(["a red dress"]), 3).tobytes())
    return digest.hexdigest()[:16]


def _import_builtin() -> None:
    from atelier.tools.encoders import compact, openclip  # noqa: F401  (registration side effect)
