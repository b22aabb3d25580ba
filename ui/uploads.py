"""Reading a message request (JSON or multipart) within the size and image-type limits.

The body is read with a cap before anything parses it, so an oversize upload costs at most the limit
in memory and is answered 413 whether or not the client declared its length.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from atelier.tools.images import ImageError, ImageTooLarge, load_image
from atelier.tools.settings import get_settings
from atelier.ui.errors import APIError

MAX_TEXT_CHARS = 2000
MULTIPART_OVERHEAD = 64 * 1024
IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream")


class MessageIn(BaseModel):
    """A shopper message as JSON; images go in a multipart request instead."""

    text: str = Field("", max_length=MAX_TEXT_CHARS, description="What the shopper says.")


@dataclass
class Message:
    text: str
    image: Image.Image | None = None


def too_large(limit: int) -> APIError:
    """One answer for every too-large photo (bytes, pixels or a decompression bomb), so clients show one text."""
    megapixels = get_settings().max_image_pixels / 1e6
    return APIError(413, "payload_too_large",
                    f"the image is too large; photos may be at most {limit / 1e6:.0f} MB and "
                    f"{megapixels:.0f} megapixels")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit - MULTIPART_OVERHEAD)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit - MULTIPART_OVERHEAD)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_message(request: Request, max_image_bytes: int, max_side: int | None = None) -> Message:
    """The text and optional image of a message request, or an ``APIError`` saying what is wrong.

    A photo is decoded (downscaled to ``max_side``) in a worker thread: a large upload never stalls the
    event loop that streams other shoppers' turns."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, max_image_bytes + MULTIPART_OVERHEAD)
    if content_type == "application/json":
        try:
            message = MessageIn.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise APIError(422, "invalid_request", "; ".join(e["msg"] for e in exc.errors())) from exc
        return checked(Message(message.text.strip()))
    if content_type == "multipart/form-data":
        return checked(await read_multipart(request, body, max_image_bytes, max_side))
    raise APIError(415, "unsupported_media_type",
                   "send the message as application/json or multipart/form-data (fields text and image)")


async def read_multipart(request: Request, body: bytes, max_image_bytes: int, max_side: int | None) -> Message:
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=4)
    except Exception as exc:  # starlette raises MultiPartException / HTTPException for malformed bodies
        raise APIError(400, "bad_request", "the multipart body could not be read") from exc
    try:
        text = form.get("text") or ""
        if not isinstance(text, str):
            raise APIError(422, "invalid_request", "the text field must be text, not a file")
        upload = form.get("image")
        image = await read_image(upload, max_image_bytes, max_side) if isinstance(upload, UploadFile) else None
        return Message(text.strip(), image)
    finally:
        await form.close()


async def read_image(upload: UploadFile, max_image_bytes: int, max_side: int | None = None) -> Image.Image | None:
    data = await upload.read()
    if not data and not upload.filename:
        return None
    declared = (upload.content_type or "").lower()
    if declared and not declared.startswith(IMAGE_CONTENT_TYPES):
        raise APIError(415, "unsupported_media_type",
                       f"{declared} is not an image; upload a JPEG, PNG, WebP, GIF or BMP photo")
    if len(data) > max_image_bytes:
        raise too_large(max_image_bytes)
    try:
        return await run_in_threadpool(load_image, data, max_bytes=max_image_bytes, max_side=max_side)
    except ImageTooLarge as exc:
        raise too_large(max_image_bytes) from exc
    except ImageError as exc:
        raise APIError(415, "unsupported_media_type", exc.public_message) from exc


def checked(message: Message) -> Message:
    if len(message.text) > MAX_TEXT_CHARS:
        raise APIError(422, "invalid_request", f"the message is too long (at most {MAX_TEXT_CHARS} characters)")
    if not message.text and message.image is None:
        raise APIError(422, "invalid_request", "send some text, an image, or both")
    return message
