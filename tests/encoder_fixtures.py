"""Fixtures for the encoder tests: a tiny open_clip config (random weights, builds offline in ~0.2 s)."""

from __future__ import annotations

import json
from pathlib import Path

TINY_OPEN_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_config(folder: Path, name: str = "atelier-tiny-test") -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP))
    return path
