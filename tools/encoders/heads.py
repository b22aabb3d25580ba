"""The trained parts of the compact encoder and the one file that ships them.

The text space is MiniLM's (all-MiniLM-L6-v2, 384-d): images are *projected into* it, as in LiT ("locked-image
text tuning", Zhai et al. 2022) turned around — here the text tower is the locked one, so product texts keep
MiniLM's semantics for text-to-text search. A zero-initialised residual adapter on the text side (in the spirit
of CLIP-Adapter / Cosine-Adapter) may nudge text vectors toward what photos can show; it starts as the
identity, so an untrained adapter leaves MiniLM untouched, and ``embed_texts`` always applies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from atelier.tools.encoders.vision import FEATURE_DIM, HIST_DIM, SPLIT_BLOCK, TRUNK_POOL_DIM, Tail

TEXT_DIM = 384
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "compact.pt"


class CompactConfig(BaseModel):
    """Everything needed to rebuild the trained modules; stored next to their weights."""

    variant: str = "lite0"
    split: int = SPLIT_BLOCK
    tuned_tail: bool = False
    tuned_blocks: int = 0  # how many of the tail's last blocks were fine-tuned (the ones before are ImageNet's)
    hidden: int = 1024
    dropout: float = 0.5
    trunk_pool: bool = False
    text_adapter: bool = False
    adapter_hidden: int = 384
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: str = ""


class ImageHead(nn.Module):
    """Pooled CNN features + colour histogram -> standardise -> MLP -> the 384-d text space."""

    def __init__(self, hidden: int = 1024, dropout: float = 0.5, trunk_pool: bool = False) -> None:
        super().__init__()
        dim = FEATURE_DIM + HIST_DIM + (TRUNK_POOL_DIM if trunk_pool else 0)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, TEXT_DIM))

    def forward(self, features: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([features, hist], dim=1) - self.mean) / self.std
        return F.normalize(self.mlp(x), dim=-1)


class TextAdapter(nn.Module):
    """t + up(gelu(down(t))), re-normalised; ``up`` starts at zero so the adapter starts as the identity."""

    def __init__(self, hidden: int = 384) -> None:
        super().__init__()
        self.down = nn.Linear(TEXT_DIM, hidden)
        self.up = nn.Linear(hidden, TEXT_DIM)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(text + self.up(F.gelu(self.down(text))), dim=-1)


class CompactWeights:
    """The trained modules of one compact encoder: image head, optional tuned tail, optional text adapter."""

    def __init__(self, config: CompactConfig, head: ImageHead, tail: Tail | None, adapter: TextAdapter | None):
        self.config, self.head, self.tail, self.adapter = config, head, tail, adapter

    def save(self, path: Path) -> None:
        """float16 state dicts, each file under 10 MB so it ships inside the package; the tuned backbone tail
        goes to a sibling ``<name>.tail.pt``."""
        state: dict[str, Any] = {"config": self.config.model_dump(), "head": _half(self.head)}
        if self.adapter is not None:
            state["adapter"] = _half(self.adapter)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.tail is not None:
            _atomic_save({"tail": _half(self.tail)}, tail_path(path))
        _atomic_save(state, path)

    @classmethod
    def load(cls, path: Path, tail_factory=None) -> CompactWeights:
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = CompactConfig(**state["config"])
        head = ImageHead(config.hidden, config.dropout, config.trunk_pool)
        head.load_state_dict(_float(state["head"]))
        tail = None
        if config.tuned_tail and tail_factory is not None:
            tail = tail_factory(config)
            tail.load_state_dict(_float(torch.load(tail_path(path), map_location="cpu", weights_only=True)["tail"]))
        adapter = None
        if config.text_adapter and "adapter" in state:
            adapter = TextAdapter(config.adapter_hidden)
            adapter.load_state_dict(_float(state["adapter"]))
        return cls(config, head.eval(), tail.eval() if tail is not None else None,
                   adapter.eval() if adapter is not None else None)


def tail_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.tail.pt")


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _half(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}


def _float(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
