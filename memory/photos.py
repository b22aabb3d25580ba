"""Uploaded photos, stored once by content hash in a folder every worker and host can read.

A photo is downscaled before it is kept (longest side ``upload_max_side``, JPEG), so a 4 MB, 6,300 px
upload costs ~100 kB on disk and the encoders, which look at 224-260 px, lose nothing. The file name is the
hash of the stored bytes, so the same photo sent twice, or by two workers at once, is one file, and a
session's memory can name it by key on any host. Retention is by age and by total size, oldest first.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from atelier.tools.settings import Settings

SUFFIX = ".jpg"
CLEANUP_EVERY_S = 600.0


@dataclass(frozen=True)
class StoredPhoto:
    key: str
    path: Path
    image: Image.Image


@dataclass(frozen=True)
class Cleanup:
    removed: int
    kept: int
    kept_bytes: int


class PhotoStore:
    """Content-addressed, downscaled uploads under ``folder`` with an age and size limit."""

    def __init__(self, folder: Path, max_side: int = 1024, max_age_days: float = 30.0,
                 max_total_mb: float = 512.0, quality: int = 88) -> None:
        self.folder = Path(folder)
        self.max_side = max_side
        self.max_age_s = max_age_days * 86400
        self.max_total_bytes = int(max_total_mb * 1e6)
        self.quality = quality
        self._last_cleanup = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "PhotoStore":
        return cls(settings.uploads_dir, settings.upload_max_side, settings.upload_retention_days,
                   settings.upload_retention_mb)

    def put(self, image: Image.Image) -> StoredPhoto:
        """Downscale, encode and keep ``image``; the stored photo (the decoded copy the models should see)."""
        picture = image.convert("RGB")
        if max(picture.size) > self.max_side:
            picture = picture.copy()
            picture.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=self.quality, optimize=True)
        data = buffer.getvalue()
        key = hashlib.sha256(data).hexdigest()[:24]
        path = self.path(key)
        if path.exists():
            os.utime(path)
        else:
            self._write(path, data)
        self._maybe_cleanup()
        return StoredPhoto(key, path, picture)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{SUFFIX}"

    def find(self, key: str) -> Path | None:
        path = self.path(key)
        return path if path.is_file() else None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Write to a temporary name, then rename: a reader on another worker never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)

    def _maybe_cleanup(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_cleanup < CLEANUP_EVERY_S:
                return
            self._last_cleanup = now
        self.cleanup(now)

    def cleanup(self, now: float | None = None) -> Cleanup:
        """Delete photos older than the age limit, then the oldest until the rest fits the size limit."""
        now = time.time() if now is None else now
        files = []
        for path in self.folder.glob(f"*/*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        files.sort(reverse=True)
        removed, kept, total, full = 0, 0, 0, False
        for mtime, size, path in files:
            full = full or total + size > self.max_total_bytes
            if full or now - mtime > self.max_age_s:
                path.unlink(missing_ok=True)
                removed += 1
            else:
                kept += 1
                total += size
        return Cleanup(removed, kept, total)
