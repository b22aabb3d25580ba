"""Shopper photos kept by content hash in the shared uploads folder (``memory.photos``: downscaled, with a
retention limit), so a later turn ("is it cotton?") on any worker or host can look at the photo a memory
anchor points to, and a replayed or exported session names the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from atelier.memory import SessionMemory
from atelier.memory.photos import PhotoStore
from atelier.tools.images import load_image


class Uploads:
    """The uploads folder (``ATELIER_UPLOADS``, default ``<home>/uploads``): one downscaled JPEG per distinct
    photo, named by its hash."""

    def __init__(self, photos: PhotoStore) -> None:
        self.photos = photos

    def path(self, key: str | None) -> str | None:
        return str(self.photos.path(key)) if key else None

    def accept(self, image: Image.Image | str | Path | bytes | None
               ) -> tuple[Image.Image | None, str | None, str | None]:
        """Load and keep an uploaded photo: (the stored, downscaled image, key, reference for the log).
        Raises ``ImageError``."""
        if image is None:
            return None, None, None
        reference = str(image) if isinstance(image, (str, Path)) else None
        picture = image if isinstance(image, Image.Image) else load_image(image, max_side=self.photos.max_side)
        stored = self.photos.put(picture)
        return stored.image, stored.key, reference or str(stored.path)


def last_photo(memory: SessionMemory) -> Image.Image | None:
    """The session's last uploaded photo, reloaded from disk (a follow-up question about "it")."""
    anchor: Any = next((a for a in reversed(memory.anchors) if a.kind == "image"), None)
    if anchor is None or not anchor.image_path or not Path(anchor.image_path).is_file():
        return None
    return load_image(anchor.image_path)
