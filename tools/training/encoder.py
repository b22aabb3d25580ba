"""Train the compact encoder's image side (and optionally a text adapter) into MiniLM's text space.

Contrastive, CLIP-style: symmetric InfoNCE with a learnable temperature over image/text pairs of *both*
catalogs, test split excluded. Items with the same text (FPI repeats names; H&M colour variants differ only in
colour words) are all positives of each other, so the loss never pushes apart true matches.
Batches are drawn from one catalog at a time: within a catalog every negative shares the photo style, which
makes them harder (a cheap form of hard-negative mining) than mixed batches, where the catalog alone
separates half the pairs.

With ``tune_blocks > 0`` the last blocks of EfficientNet-Lite are fine-tuned on the cached trunk activations
(see ``vision.py``); with 0 only the head is trained on cached pooled features (minutes on 2 cores).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atelier.tools.encoders.heads import DEFAULT_WEIGHTS, CompactConfig, CompactWeights, ImageHead, TextAdapter
from atelier.tools.encoders.vision import split_backbone, trunk_pool
from atelier.tools.training.evaluate import cross_modal_recall
from atelier.tools.training.features import Features, extract


def _text_ids(texts: list[str]) -> np.ndarray:
    lookup: dict[str, int] = {}
    return np.array([lookup.setdefault(t.strip().lower(), len(lookup)) for t in texts], dtype=np.int64)


def info_nce(img: torch.Tensor, txt: torch.Tensor, ids: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; rows with equal text ``ids`` share the target mass (multi-positive)."""
    logits = logit_scale.exp().clamp(max=100) * img @ txt.T
    same = (ids[:, None] == ids[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())


class Model(nn.Module):
    def __init__(self, config: CompactConfig, tail: nn.Module | None) -> None:
        super().__init__()
        self.tail = tail
        self.head = ImageHead(config.hidden, config.dropout, config.trunk_pool)
        self.trunk_pool = config.trunk_pool
        self.adapter = TextAdapter(config.adapter_hidden) if config.text_adapter else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def image(self, x: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """``x``: trunk activations when the tail is tuned, else the cached frozen features."""
        if self.tail is None:
            return self.head(x, hist)
        feats = self.tail(x)
        if self.trunk_pool:
            feats = torch.cat([feats, trunk_pool(x)], dim=1)
        return self.head(feats, hist)

    def text(self, t: torch.Tensor) -> torch.Tensor:
        return self.adapter(t) if self.adapter is not None else t


def _prepare_tail(config: CompactConfig, tune_blocks: int, drop_connect: float) -> nn.Module:
    """The backbone tail with its last ``tune_blocks`` blocks, 1x1 conv head and BN affine trainable."""
    _, tail = split_backbone(config.variant, config.split)
    trainable = list(tail.blocks)[len(tail.blocks) - tune_blocks :] + [tail.conv_head, tail.bn]
    for p in tail.parameters():
        p.requires_grad = False
    for module in trainable:
        for p in module.parameters():
            p.requires_grad = True
    tail.drop_connect = drop_connect
    return tail


def _freeze_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def train_compact(
    output: Path | None = DEFAULT_WEIGHTS,
    *,
    datasets: Path | None = None,
    cache_dir: Path | None = None,
    catalogs: tuple[str, ...] = ("hm",),
    tune_blocks: int = 0,
    text_adapter: bool = True,
    epochs: int = 20,
    batch_size: int = 1024,
    lr: float = 1e-3,
    tail_lr: float = 1e-4,
    weight_decay: float = 0.2,
    hidden: int = 1024,
    dropout: float = 0.5,
    drop_connect: float = 0.1,
    catalog_batches: bool = True,
    seed: int = 0,
    threads: int = 2,
    limit: int | None = None,
    use_trunk_pool: bool = True,
    fpi_items: int | None = None,
    extract_missing: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train and (when ``output`` is set) save the compact weights; return H&M test-split recalls.

    ``tune_blocks``: 0 trains the head on frozen pooled features; k in 1..4 also fine-tunes the last k
    blocks of the backbone tail (and its 1x1 conv head) from cached trunk activations.
    """
    from atelier.tools.settings import get_settings

    settings = get_settings()
    datasets = datasets or settings.datasets
    cache_dir = cache_dir or settings.cache_dir
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.set_num_threads(threads)
    config = CompactConfig(tuned_tail=tune_blocks > 0, hidden=hidden, dropout=dropout, text_adapter=text_adapter,
                           trunk_pool=use_trunk_pool)

    cap = None if extract_missing else 0
    feats = {c: extract(c, datasets, cache_dir, log=log, limit=limit,
                        max_items=cap if cap is not None else (fpi_items if c == "fpi" else None)) for c in catalogs}
    if fpi_items is not None and "fpi" in feats:
        feats["fpi"] = _head(feats["fpi"], fpi_items)
    tuned = tune_blocks > 0
    tail = _prepare_tail(config, tune_blocks, drop_connect) if tuned else None
    model = Model(config, tail)
    _set_standardisation(model.head, feats, config)

    inputs = np.concatenate([_image_inputs(f, tuned, config.trunk_pool) for f in feats.values()])
    hists = torch.from_numpy(np.concatenate([np.asarray(f.hist, np.float32) for f in feats.values()]))
    texts = torch.from_numpy(np.concatenate([np.asarray(f.text, np.float32) for f in feats.values()]))
    ids = torch.from_numpy(np.concatenate([_text_ids(f.pairs.texts) + 10_000_000 * i
                                           for i, f in enumerate(feats.values())]))
    offsets = np.cumsum([0] + [len(f.pairs.ids) for f in feats.values()])
    train_idx = {c: offsets[i] + np.flatnonzero(~f.pairs.test) for i, (c, f) in enumerate(feats.items())}
    if not catalog_batches:
        train_idx = {"all": np.concatenate(list(train_idx.values()))}
    log(f"train pairs: {', '.join(f'{c} {len(i)}' for c, i in train_idx.items())}; tune_blocks={tune_blocks}")

    head_params = list(model.head.parameters()) + [model.logit_scale]
    if model.adapter is not None:
        head_params += list(model.adapter.parameters())
    groups = [{"params": head_params, "lr": lr, "weight_decay": weight_decay}]
    if tail is not None:
        groups.append({"params": [p for p in tail.parameters() if p.requires_grad], "lr": tail_lr,
                       "weight_decay": 1e-4})
    opt = torch.optim.AdamW(groups)
    steps_per_epoch = sum(max(1, len(i) // batch_size) for i in train_idx.values())
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total,
                                                pct_start=0.1, anneal_strategy="cos")
    for epoch in range(epochs):
        model.train()
        if tail is not None:
            _freeze_bn(tail)
        t0, losses = time.time(), []
        for idx in _batches(train_idx, batch_size, rng):
            x = torch.from_numpy(np.asarray(inputs[idx], np.float32))
            img = model.image(x, hists[idx])
            txt = model.text(texts[idx])
            loss = info_nce(img, txt, ids[idx], model.logit_scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        log(f"epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} "
            f"T={1 / model.logit_scale.exp().item():.3f} {time.time() - t0:.0f}s")
    model.eval()
    metrics = evaluate_model(model, feats["hm"], tuned) if "hm" in feats else {}
    config.notes = f"train pairs: {', '.join(f'{c} {len(i)}' for c, i in train_idx.items())}"
    log(" ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    config.metrics = metrics
    config.notes += f"; epochs={epochs} lr={lr} tail_lr={tail_lr} tune_blocks={tune_blocks} catalogs={','.join(catalogs)}"
    if output is not None:
        CompactWeights(config, model.head, tail, model.adapter).save(output)
        log(f"saved {output}")
    return metrics


def _batches(train_idx: dict[str, np.ndarray], batch_size: int, rng: np.random.Generator):
    """Shuffled batches, each from one group of ``train_idx``, groups interleaved at random."""
    plan = []
    for idx in train_idx.values():
        perm = rng.permutation(idx)
        n = max(1, len(perm) // batch_size)
        plan += [np.sort(perm[i * batch_size : (i + 1) * batch_size]) for i in range(n)]
    order = rng.permutation(len(plan))
    for i in order:
        yield plan[i]


def _head(f: Features, n: int) -> Features:
    from atelier.tools.training.features import _subset

    n = min(n, len(f.pairs.ids))
    return Features(_subset(f.pairs, np.arange(n)), f.trunk[:n], f.pooled[:n], f.hist[:n], f.text[:n])


def frozen_features(f: Features, with_trunk_pool: bool, chunk: int = 2048) -> np.ndarray:
    """Cached pooled features, plus the pooled trunk descriptor computed from the cached activations."""
    pooled = np.asarray(f.pooled, np.float32)
    if not with_trunk_pool:
        return pooled
    parts = [trunk_pool(torch.from_numpy(np.asarray(f.trunk[lo : lo + chunk], np.float32))).numpy()
             for lo in range(0, len(pooled), chunk)]
    return np.hstack([pooled, np.concatenate(parts)])


def _image_inputs(f: Features, tuned: bool, with_trunk_pool: bool) -> np.ndarray:
    return np.asarray(f.trunk) if tuned else frozen_features(f, with_trunk_pool)


def _set_standardisation(head: ImageHead, feats: dict[str, Features], config: CompactConfig) -> None:
    pooled = np.concatenate([frozen_features(f, config.trunk_pool)[~f.pairs.test] for f in feats.values()])
    hist = np.concatenate([f.hist[~f.pairs.test] for f in feats.values()])
    x = np.concatenate([pooled, hist], axis=1)
    head.mean.copy_(torch.from_numpy(x.mean(0)))
    head.std.copy_(torch.from_numpy(x.std(0) + 1e-3))


@torch.inference_mode()
def image_vectors(model: Model, f: Features, tuned: bool, batch: int = 512) -> np.ndarray:
    out = []
    source = f.trunk if tuned else frozen_features(f, model.trunk_pool)
    for lo in range(0, len(f.pairs.ids), batch):
        x = torch.from_numpy(np.asarray(source[lo : lo + batch], np.float32))
        out.append(model.image(x, torch.from_numpy(f.hist[lo : lo + batch])).numpy())
    return np.concatenate(out)


@torch.inference_mode()
def evaluate_model(model: Model, hm: Features, tuned: bool) -> dict[str, float]:
    img = image_vectors(model, hm, tuned)
    txt = model.text(torch.from_numpy(np.asarray(hm.text, np.float32))).numpy()
    return cross_modal_recall(txt, img, hm.pairs.test)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from atelier.tools.settings import apply_offline_defaults

    apply_offline_defaults()
    p = argparse.ArgumentParser(description="Train the compact encoder head (atelier train-encoder).")
    p.add_argument("--output", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--catalogs", default="hm", help="hm, or hm,fpi (FPI pairs lowered H&M test recall, see docs)")
    p.add_argument("--tune-blocks", type=int, default=0)
    p.add_argument("--no-text-adapter", dest="text_adapter", action="store_false")
    p.add_argument("--no-trunk-pool", dest="trunk_pool", action="store_false")
    p.add_argument("--fpi-items", type=int, default=None)
    p.add_argument("--no-extract", action="store_true", help="use only what the feature cache holds")
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--tail-lr", type=float, default=1e-4)
    p.add_argument("--mixed-batches", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="evaluate only, do not save")
    a = p.parse_args(argv)
    train_compact(None if a.dry_run else a.output, catalogs=tuple(a.catalogs.split(",")), tune_blocks=a.tune_blocks,
                  text_adapter=a.text_adapter, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                  tail_lr=a.tail_lr, catalog_batches=not a.mixed_batches, seed=a.seed,
                  use_trunk_pool=a.trunk_pool, fpi_items=a.fpi_items, extract_missing=not a.no_extract, hidden=a.hidden, threads=a.threads,
                  log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
