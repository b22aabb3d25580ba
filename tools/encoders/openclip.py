"""``open_clip:<model>[:<pretrained>]``: any open_clip model as an Atelier encoder.

Names, after the ``open_clip:`` prefix:

- ``ViT-B-32:laion2b_s34b_b79k`` — a built-in architecture and a pretrained tag (weights from the HF hub);
  ``ViT-B-32`` alone takes the architecture's first listed tag.
- ``hf-hub:Marqo/marqo-fashionSigLIP`` or ``local-dir:/path/to/folder`` — config and weights from the hub or a
  folder (the schema's own colon is part of the model name).
- ``ViT-B-32:/path/to/checkpoint.pt`` — a local checkpoint file (works offline).
- ``<model>:none`` — random weights, for tests only; ``<model>`` may also be a path to a ``.json`` model config,
  registered with ``open_clip.add_model_config`` first (e.g. a tiny config for offline tests).

Fashion-tuned CLIPs (FashionCLIP, Marqo-FashionSigLIP) are the natural upgrade from ``compact`` when the hub
is reachable; failures say how to get there instead of retrying the network.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.tools.encoders import EncoderError, register_encoder
from atelier.tools.vectors import unit_rows

SCHEMAS = ("hf-hub:", "local-dir:")
BATCH = 32


def parse_name(rest: str) -> tuple[str, str | None]:
    """Split ``<model>[:<pretrained>]``, keeping schema prefixes (``hf-hub:org/name``) inside the model."""
    if not rest:
        raise EncoderError("open_clip needs a model: open_clip:<model>[:<pretrained>], "
                           "e.g. open_clip:ViT-B-32:laion2b_s34b_b79k or open_clip:hf-hub:Marqo/marqo-fashionSigLIP")
    for schema in SCHEMAS:
        if rest.startswith(schema):
            body = rest[len(schema):]
            if schema == "local-dir:":
                return rest, None
            model, _, pretrained = body.partition(":")
            return schema + model, pretrained or None
    model, _, pretrained = rest.partition(":")
    return model, pretrained or None


class OpenClipEncoder:
    """Wraps an open_clip model, its eval transform and tokenizer; vectors are L2-normalised float32."""

    def __init__(self, model_name: str, pretrained: str | None, name: str, device: str = "cpu") -> None:
        _sync_offline_mode()
        import open_clip
        import torch

        self.name = name
        self.device = device
        if model_name.endswith(".json"):
            config = Path(model_name).expanduser()
            if not config.exists():
                raise EncoderError(f"open_clip model config not found: {config}")
            open_clip.add_model_config(config)
            model_name = config.stem
        is_schema = model_name.startswith(SCHEMAS)
        random_init = (pretrained or "").lower() == "none"
        if not is_schema and pretrained is None:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            if not tags:
                raise EncoderError(
                    f"open_clip model {model_name!r} has no pretrained tags; give a checkpoint "
                    f"(open_clip:{model_name}:/path/to/checkpoint.pt) or ':none' for random test weights")
            pretrained = tags[0]
        if pretrained is not None and not random_init and _looks_like_path(pretrained):
            if not Path(pretrained).expanduser().exists():
                raise EncoderError(f"open_clip checkpoint not found: {pretrained}")
            pretrained = str(Path(pretrained).expanduser())
        kwargs = {"pretrained": None if random_init or is_schema else pretrained, "device": device}
        if random_init:
            kwargs["pretrained_text"] = False
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, **kwargs)
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # noqa: BLE001  (hub, config and checkpoint errors all end here)
            raise EncoderError(_failure_message(model_name, pretrained, exc)) from exc
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self._torch = torch
        self._lock = threading.Lock()
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer([""]).to(device)).shape[-1])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), np.float32)]
        with self._lock, torch.inference_mode():
            for lo in range(0, len(texts), BATCH):
                tokens = self.tokenizer(list(texts[lo : lo + BATCH])).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return unit_rows(np.concatenate(out))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        from atelier.tools.encoders.vision import to_rgb

        torch = self._torch
        out = [np.zeros((0, self.dim), np.float32)]
        with self._lock, torch.inference_mode():
            for lo in range(0, len(images), BATCH):
                x = torch.stack([self.preprocess(to_rgb(im)) for im in images[lo : lo + BATCH]]).to(self.device)
                out.append(self.model.encode_image(x).float().cpu().numpy())
        return unit_rows(np.concatenate(out))


def _sync_offline_mode() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: honour the environment even if it was imported
    first, so an offline machine fails in milliseconds instead of retrying the network for ~50 s."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = constants._is_true(os.environ.get("HF_HUB_OFFLINE")
                                                  or os.environ.get("TRANSFORMERS_OFFLINE"))


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors")) or value.startswith(("~", "."))


def _failure_message(model: str, pretrained: str | None, exc: Exception) -> str:
    where = f"{model!r}" + (f" with pretrained {pretrained!r}" if pretrained else "")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    reason = "the Hugging Face hub is switched off (HF_HUB_OFFLINE=1)" if offline else "the weights could not be fetched"
    return (
        f"cannot load open_clip model {where}: {type(exc).__name__}: {str(exc).splitlines()[0].rstrip('.') if str(exc) else ''}. "
        f"Likely cause: {reason} and the weights are not in the local cache. To fix: connect to the hub once "
        f"(unset HF_HUB_OFFLINE; the weights are then cached), or pass a local checkpoint "
        f"(open_clip:<model>:/path/to/checkpoint.pt), or use the offline default encoder 'compact'."
    )



@register_encoder("open_clip")
def build_open_clip(rest: str) -> OpenClipEncoder:
    from atelier.tools.settings import get_settings

    model, pretrained = parse_name(rest)
    return OpenClipEncoder(model, pretrained, name=f"open_clip:{rest}", device=get_settings().device)
