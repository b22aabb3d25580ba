"""Uploaded photos: downscaled before they are stored, one file per content, retention by age and size."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from atelier.memory.photos import PhotoStore
from atelier.tools.images import load_image


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_upload_is_downscaled_and_stored_once_by_content(tmp_path):
    store = PhotoStore(tmp_path, max_side=1024)
    first = store.put(noise(3000, 2000))
    again = store.put(noise(3000, 2000))
    other = store.put(noise(300, 200, seed=1))
    assert first.key == again.key != other.key
    with Image.open(first.path) as stored:
        assert stored.format == "JPEG" and stored.size == (1024, 683)
    assert first.image.size == (1024, 683)
    assert Image.open(other.path).size == (300, 200)
    assert sorted(p.name for p in tmp_path.glob("*/*")) == sorted([first.path.name, other.path.name])
    assert store.find(first.key) == first.path and store.find("0" * 24) is None


def test_cleanup_drops_old_photos_then_the_oldest_beyond_the_size_limit(tmp_path):
    store = PhotoStore(tmp_path, max_side=256, max_age_days=1, max_total_mb=100)
    paths = [store.put(noise(256, 256, seed=i)).path for i in range(4)]
    now = 10_000_000.0
    for age_days, path in zip([5, 0.3, 0.2, 0.1], paths):
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    size = paths[3].stat().st_size + paths[2].stat().st_size
    store.max_total_bytes = size
    report = store.cleanup(now)
    assert (report.removed, report.kept, report.kept_bytes) == (2, 2, size)
    assert [p.exists() for p in paths] == [False, False, True, True]


def test_large_jpeg_is_decoded_at_reduced_size():
    buffer = io.BytesIO()
    noise(4000, 3000).save(buffer, format="JPEG", quality=90)
    image = load_image(buffer.getvalue(), max_bytes=50_000_000, max_side=1024)
    assert image.mode == "RGB" and max(image.size) == 1024 and image.size == (1024, 768)
