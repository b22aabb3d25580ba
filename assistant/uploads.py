"""Shopper photos kept on disk by content hash, so a later turn ("is it cotton?") can look at the photo a
memory anchor points to, and a replayed or exported session names the same file."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image

from atelier.memory import SessionMemory
from atelier.tools.images import load_image


class Uploads:
    """The uploads folder (``<home>/uploads``): one PNG per distinct photo, named by its hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str | None) -> str | None:
        return str(self.folder / f"{key}.png") if key else None

    def accept(self, image: Image.Image | str | Path | bytes | None
               ) -> tuple[Image.Image | None, str | None, str | None]:
        """Load and keep an uploaded photo: (image, key, reference for the log). Raises ``ImageError``."""
        if image is None:
            return None, None, None
        reference = None
        if isinstance(image, Image.Image):
            picture = image.convert("RGB")
        else:
            if isinstance(image, (str, Path)):
                reference = str(image)
            picture = load_image(image)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        key = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
        path = self.folder / f"{key}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buffer.getvalue())
        return picture, key, reference or str(path)


def last_photo(memory: SessionMemory) -> Image.Image | None:
    """The session's last uploaded photo, reloaded from disk (a follow-up question about "it")."""
    anchor: Any = next((a for a in reversed(memory.anchors) if a.kind == "image"), None)
    if anchor is None or not anchor.image_path or not Path(anchor.image_path).is_file():
        return None
    return load_image(anchor.image_path)
