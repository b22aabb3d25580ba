"""Safe image loading: every photo that enters Atelier (catalog or upload) passes through here.

Bad input gets a clear ``ImageError`` instead of a traceback: wrong file type, corrupt data,
decompression bombs, oversize uploads.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from atelier.tools.errors import InputError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP"}


class ImageError(InputError):
    """An image could not be used; the message is safe to show to a shopper."""

    code = "bad_image"


class ImageTooLarge(ImageError):
    """Too many bytes or pixels (a decompression bomb included): the client should send a smaller photo."""

    code = "payload_too_large"
    status = 413


def resolve_image_ref(ref: str, base: Path | None = None) -> Path:
    """Turn a catalog image reference (relative path, absolute path or file:// URL) into a path."""
    if ref.startswith("file://"):
        return Path(unquote(urlparse(ref).path))
    if "://" in ref:
        raise ImageError(f"only local paths and file:// URLs are supported, got {ref!r}",
                         public_message="Only uploaded photos and local image files can be read.")
    path = Path(ref)
    return path if path.is_absolute() or base is None else base / path


def load_image(source: str | Path | bytes, max_bytes: int | None = None, max_pixels: int | None = None,
               max_side: int | None = None) -> Image.Image:
    """Open, verify and decode an image to RGB, or raise ``ImageError`` saying what is wrong.

    ``max_side`` downscales to that longest side; a JPEG is then decoded at a reduced DCT scale (libjpeg's
    draft mode), so a 6,300 px upload costs a fraction of a full decode."""
    from atelier.tools.settings import get_settings

    settings = get_settings()
    max_bytes = settings.max_upload_bytes if max_bytes is None else max_bytes
    max_pixels = settings.max_image_pixels if max_pixels is None else max_pixels
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}", public_message="That image file was not found.")
        data = path.read_bytes()
    else:
        data = source
    if not data:
        raise ImageError("the image is empty")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is too large ({len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            width, height = probe.size
            if width * height <= max_pixels:
                probe.verify()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("the image is too large (its header claims more pixels than Atelier decodes)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError("this file is not a readable image (JPEG, PNG, WebP, GIF or BMP)") from exc
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(f"unsupported image type {fmt}; use JPEG, PNG, WebP, GIF or BMP")
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image is too large ({width}x{height} pixels; the limit is "
                            f"{max_pixels / 1e6:.0f} megapixels)")
    try:
        image = Image.open(io.BytesIO(data))
        if max_side is not None:
            image.draft("RGB", (max_side, max_side))
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("the image is too large (more pixels than Atelier decodes)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image is corrupt and could not be decoded ({exc.__class__.__name__})") from exc
    image = image.convert("RGB")
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image
