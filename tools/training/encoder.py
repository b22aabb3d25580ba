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

from atelier.tools.encoders.heads import (DEFAULT_WEIGHTS, TEXT_DIM, CompactConfig, CompactWeights, ImageHead,
                                          TextAdapter)
from atelier.tools.encoders.vision import FEATURE_DIM, split_backbone, trunk_pool
from atelier.tools.training.features import Features, extract, label_text_vectors


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


def tail_from(tail: nn.Module, x: torch.Tensor, start: int) -> torch.Tensor:
    """The tail's blocks ``[start:]``, conv head and pooling on activations that already went through the
    blocks before ``start`` (those are frozen, so their output is computed once and kept)."""
    for block in list(tail.blocks)[start:]:
        x = block(x, drop_connect_rate=tail.drop_connect if tail.training else None)
    return tail.act(tail.bn(tail.conv_head(x))).mean(dim=(2, 3))


@torch.inference_mode()
def _frozen_prefix(tail: nn.Module, f: Features, start: int, cache_dir: Path, chunk: int = 512,
                   log: Callable[[str], None] = print) -> np.ndarray:
    """Activations after the tail's frozen blocks ``[0:start)`` for every item (float16, cached on disk)."""
    if start == 0:
        return np.asarray(f.trunk)
    from atelier.tools.encoders.vision import _state_hash
    from atelier.tools.training.features import _ids_hash, cache_root

    root = cache_root(cache_dir) / f.pairs.catalog
    path = root / f"prefix{start}-{_ids_hash(f.pairs.ids)}-{_state_hash(nn.ModuleList(list(tail.blocks)[:start]))}.npy"
    if path.exists():
        return np.load(path)
    t0, out = time.time(), np.empty((len(f.pairs.ids), *f.trunk.shape[1:]), np.float16)
    tail.eval()
    for lo in range(0, len(out), chunk):
        x = torch.from_numpy(np.asarray(f.trunk[lo : lo + chunk], np.float32))
        for block in list(tail.blocks)[:start]:
            x = block(x)
        out[lo : lo + chunk] = x.numpy().astype(np.float16)
    np.save(path, out)
    log(f"[{f.pairs.catalog}] frozen tail prefix ({start} blocks) {len(out) / (time.time() - t0):.0f} items/s")
    return out


AUX_LABELS = ("category", "tax_colour", "tax_gender")


def _aux_targets(feats: dict[str, Features]) -> dict[str, tuple[torch.Tensor, int]]:
    """Shared-taxonomy labels of every item as class indices (-100 = unknown, ignored)."""
    out = {}
    for key in AUX_LABELS:
        values = np.concatenate([f.pairs.labels[key] for f in feats.values()])
        classes = sorted({v for v in values if v and v != "unknown"})
        index = {c: i for i, c in enumerate(classes)}
        out[key] = (torch.tensor([index.get(v, -100) for v in values]), len(classes))
    return out


def train_compact(
    output: Path | None = DEFAULT_WEIGHTS,
    *,
    datasets: Path | None = None,
    cache_dir: Path | None = None,
    catalogs: tuple[str, ...] = ("hm", "fpi"),
    tune_blocks: int = 0,
    tune_epochs: int | None = None,
    text_adapter: bool = True,
    adapter_hidden: int = 1024,
    captions: float = 0.0,
    aux_weight: float = 0.0,
    views: tuple[str, ...] = (),
    view_catalogs: tuple[str, ...] = ("hm",),
    aug: float = 0.5,
    repeat: dict[str, int] | None = None,
    epochs: int = 6,
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
    evaluate: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Train and (when ``output`` is set) save the compact weights; return the test-split metrics per gallery
    (``hm``, ``fpi``, ``mixed``; see ``evaluate.py``).

    ``tune_blocks``: 0 trains the head on frozen pooled features; k in 1..4 also fine-tunes the last k
    blocks of the backbone tail (and its 1x1 conv head) from cached activations, during the last
    ``tune_epochs`` epochs (default: all); the epochs before train the head on the frozen features.
    ``captions``: probability of replacing an FPI item's text by its label-derived caption in a batch (the mean
    of the name's and the label phrase's MiniLM vectors: "name" + "Tshirts, White, Men, Casual").
    ``aux_weight``: weight of auxiliary taxonomy classification (category, colour, gender) of image vectors.
    ``views``: augmented photo views (``features.augment``: lowres, flip, crop) of ``view_catalogs``, cached like
    the originals; each item of a batch is shown as one of its views with probability ``aug`` (head-only).
    ``repeat``: passes over a catalog per epoch (e.g. ``{"hm": 2}``: the smaller catalog gets as many steps as
    it would alone in twice the epochs, without slowing the larger one's schedule).
    """
    from atelier.tools.settings import get_settings

    settings = get_settings()
    datasets = datasets or settings.datasets
    cache_dir = cache_dir or settings.cache_dir
    repeat = {"hm": 3} if repeat is None else repeat
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.set_num_threads(threads)
    config = CompactConfig(tuned_tail=tune_blocks > 0, tuned_blocks=tune_blocks, hidden=hidden, dropout=dropout,
                           text_adapter=text_adapter, trunk_pool=use_trunk_pool, adapter_hidden=adapter_hidden)

    cap = None if extract_missing else 0
    feats = {c: extract(c, datasets, cache_dir, log=log, limit=limit,
                        max_items=cap if cap is not None else (fpi_items if c == "fpi" else None)) for c in catalogs}
    if fpi_items is not None and "fpi" in feats:
        feats["fpi"] = _head(feats["fpi"], fpi_items)
    tuned = tune_blocks > 0
    tail = _prepare_tail(config, tune_blocks, drop_connect) if tuned else None
    start = (len(tail.blocks) - tune_blocks) if tuned else 0
    tune_epochs = epochs if tune_epochs is None else min(tune_epochs, epochs)
    model = Model(config, tail)
    _set_standardisation(model.head, feats, config)

    frozen = np.concatenate([frozen_features(f, config.trunk_pool) for f in feats.values()])
    prefix = np.concatenate([_frozen_prefix(tail, f, start, cache_dir, log=log) for f in feats.values()]) \
        if tuned else None
    hists = torch.from_numpy(np.concatenate([np.asarray(f.hist, np.float32) for f in feats.values()]))
    if views and tuned:
        raise ValueError("augmented views are cached for the frozen tail only (use tune_blocks=0)")
    view_x, view_h = [], []
    for view in views:
        parts = [(frozen_features(v, config.trunk_pool), np.asarray(v.hist, np.float32))
                 if (v := _view_features(c, f, view, datasets, cache_dir, view_catalogs, log)) is not None
                 else (frozen_features(f, config.trunk_pool), np.asarray(f.hist, np.float32))
                 for c, f in feats.items()]
        view_x.append(np.concatenate([a for a, _ in parts]))
        view_h.append(torch.from_numpy(np.concatenate([b for _, b in parts])))
    texts = torch.from_numpy(np.concatenate([np.asarray(f.text, np.float32) for f in feats.values()]))
    alt = [label_text_vectors(f, cache_dir, log=log) if captions > 0 else None for f in feats.values()]
    alt_texts = F.normalize(texts + torch.from_numpy(np.concatenate(
        [np.asarray(a if a is not None else f.text, np.float32) for a, f in zip(alt, feats.values())])), dim=-1)
    has_alt = torch.from_numpy(np.concatenate([np.full(len(f.pairs.ids), a is not None)
                                               for a, f in zip(alt, feats.values())]))
    ids = torch.from_numpy(np.concatenate([_text_ids(f.pairs.texts) + 10_000_000 * i
                                           for i, f in enumerate(feats.values())]))
    aux = _aux_targets(feats) if aux_weight > 0 else {}
    aux_heads = nn.ModuleDict({k: nn.Linear(TEXT_DIM, n) for k, (_, n) in aux.items()})
    offsets = np.cumsum([0] + [len(f.pairs.ids) for f in feats.values()])
    train_idx = {c: offsets[i] + np.flatnonzero(~f.pairs.test) for i, (c, f) in enumerate(feats.items())}
    if not catalog_batches:
        train_idx = {"all": np.concatenate(list(train_idx.values()))}
    for c, r in (repeat or {}).items():
        if c in train_idx and r > 1:
            train_idx.update({f"{c}#{k}": train_idx[c] for k in range(1, r)})
    log(f"train pairs: {', '.join(f'{c} {len(i)}' for c, i in train_idx.items())}; tune_blocks={tune_blocks} "
        f"(last {tune_epochs} epochs); captions={captions}; aux_weight={aux_weight}")

    head_params = list(model.head.parameters()) + [model.logit_scale] + list(aux_heads.parameters())
    if model.adapter is not None:
        head_params += list(model.adapter.parameters())
    groups = [{"params": head_params, "lr": lr, "weight_decay": weight_decay}]
    steps_per_epoch = sum(max(1, len(i) // batch_size) for i in train_idx.values())
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.1, anneal_strategy="cos")
    tail_opt = tail_sched = None
    if tail is not None:
        tail_opt = torch.optim.AdamW([p for p in tail.parameters() if p.requires_grad], lr=tail_lr,
                                     weight_decay=1e-4)
        tail_sched = torch.optim.lr_scheduler.OneCycleLR(tail_opt, max_lr=tail_lr,
                                                         total_steps=tune_epochs * steps_per_epoch,
                                                         pct_start=0.1, anneal_strategy="cos")
    tp_dim = frozen.shape[1] - FEATURE_DIM
    for epoch in range(epochs):
        model.train()
        tuning = tail is not None and epoch >= epochs - tune_epochs
        if tail is not None:
            tail.train()
            _freeze_bn(tail)
        t0, losses = time.time(), []
        for idx in _batches(train_idx, batch_size, rng):
            hist = hists[idx]  # a copy (advanced indexing): views may overwrite rows
            if tuning:
                pooled = tail_from(tail, torch.from_numpy(np.asarray(prefix[idx], np.float32)), start)
                rest = torch.from_numpy(np.asarray(frozen[idx, FEATURE_DIM:], np.float32)) if tp_dim else None
                x = torch.cat([pooled, rest], dim=1) if rest is not None else pooled
            else:
                x = torch.from_numpy(np.asarray(frozen[idx], np.float32))
                if view_x:
                    pick = np.where(rng.random(len(idx)) < aug, rng.integers(0, len(view_x), len(idx)), -1)
                    for v in range(len(view_x)):
                        rows = np.flatnonzero(pick == v)
                        if len(rows):
                            x[rows] = torch.from_numpy(np.asarray(view_x[v][idx[rows]], np.float32))
                            hist[rows] = view_h[v][idx[rows]]
            img = model.head(x, hist)
            t = texts[idx]
            if captions > 0:
                swap = has_alt[idx] & (torch.rand(len(idx)) < captions)
                t = torch.where(swap[:, None], alt_texts[idx], t)
            txt = model.text(t)
            loss = info_nce(img, txt, ids[idx], model.logit_scale)
            for key, (target, _) in aux.items():
                loss = loss + aux_weight * F.cross_entropy(aux_heads[key](img) * 10.0, target[idx],
                                                           ignore_index=-100)
            opt.zero_grad()
            if tuning:
                tail_opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if tuning:
                tail_opt.step()
                tail_sched.step()
            losses.append(loss.item())
        log(f"epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} "
            f"T={1 / model.logit_scale.exp().item():.3f} {time.time() - t0:.0f}s{' (tail tuned)' if tuning else ''}")
    model.eval()
    metrics = evaluate_model(model, feats, tuned, cache_dir=cache_dir, start=start) if evaluate else {}
    for name, m in metrics.items():
        log(f"{name}: " + " ".join(f"{k}={v:.3f}" for k, v in m.items()))
    config.notes = f"train pairs: {', '.join(f'{c} {len(i)}' for c, i in train_idx.items())}"
    config.metrics = {f"{g}_{k}": v for g, m in metrics.items() for k, v in m.items()}
    config.notes += (f"; epochs={epochs} lr={lr} tail_lr={tail_lr} tune_blocks={tune_blocks} tune_epochs={tune_epochs}"
                     f" captions={captions} aux_weight={aux_weight} adapter_hidden={adapter_hidden}"
                     f" repeat={repeat} catalogs={','.join(catalogs)} seed={seed}")
    if output is not None:
        CompactWeights(config, model.head, tail, model.adapter).save(output)
        log(f"saved {output}")
    return metrics


def _view_features(catalog: str, f: Features, view: str, datasets: Path, cache_dir: Path,
                   view_catalogs: tuple[str, ...], log: Callable[[str], None]) -> Features | None:
    """The cached ``view`` of ``catalog`` aligned with ``f`` (extracting what is missing), or None."""
    if catalog not in view_catalogs:
        return None
    v = extract(catalog, datasets, cache_dir, log=log, view=view)
    if v.pairs.ids != f.pairs.ids:
        raise ValueError(f"view {view} of {catalog} is not aligned with its features")
    return v


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


_FROZEN: dict[tuple, np.ndarray] = {}


def frozen_features(f: Features, with_trunk_pool: bool, chunk: int = 2048) -> np.ndarray:
    """Cached pooled features, plus the pooled trunk descriptor computed from the cached activations
    (memoised per feature set: training, standardisation and evaluation all need it)."""
    key = (f.pairs.catalog, len(f.pairs.ids), id(f.trunk), with_trunk_pool)
    if key in _FROZEN:
        return _FROZEN[key]
    pooled = np.asarray(f.pooled, np.float32)
    if with_trunk_pool:
        parts = [trunk_pool(torch.from_numpy(np.asarray(f.trunk[lo : lo + chunk], np.float32))).numpy()
                 for lo in range(0, len(pooled), chunk)]
        pooled = np.hstack([pooled, np.concatenate(parts)])
    _FROZEN[key] = pooled
    return pooled


def _image_inputs(f: Features, tuned: bool, with_trunk_pool: bool) -> np.ndarray:
    return np.asarray(f.trunk) if tuned else frozen_features(f, with_trunk_pool)


def _set_standardisation(head: ImageHead, feats: dict[str, Features], config: CompactConfig) -> None:
    pooled = np.concatenate([frozen_features(f, config.trunk_pool)[~f.pairs.test] for f in feats.values()])
    hist = np.concatenate([f.hist[~f.pairs.test] for f in feats.values()])
    x = np.concatenate([pooled, hist], axis=1)
    head.mean.copy_(torch.from_numpy(x.mean(0)))
    head.std.copy_(torch.from_numpy(x.std(0) + 1e-3))


@torch.inference_mode()
def image_vectors(model: Model, f: Features, tuned: bool, batch: int = 512, cache_dir: Path | None = None,
                  start: int = 0) -> np.ndarray:
    """Image vectors of every item; a tuned tail runs from the cached frozen prefix (blocks before ``start``)."""
    out = []
    frozen = frozen_features(f, model.trunk_pool)
    prefix = _frozen_prefix(model.tail, f, start, cache_dir, log=lambda m: None) if tuned and start else \
        (f.trunk if tuned else None)
    for lo in range(0, len(f.pairs.ids), batch):
        hist = torch.from_numpy(np.asarray(f.hist[lo : lo + batch], np.float32))
        x = torch.from_numpy(np.asarray(frozen[lo : lo + batch], np.float32))
        if tuned:
            pooled = tail_from(model.tail, torch.from_numpy(np.asarray(prefix[lo : lo + batch], np.float32)), start)
            x = torch.cat([pooled, x[:, FEATURE_DIM:]], dim=1)
        out.append(model.head(x, hist).numpy())
    return np.concatenate(out)


@torch.inference_mode()
def evaluate_model(model: Model, feats: dict[str, Features] | Features, tuned: bool,
                   cache_dir: Path | None = None, start: int = 0) -> dict[str, dict[str, float]]:
    """Test-split metrics on each catalog's whole gallery and, with both catalogs, on the mixed gallery."""
    from atelier.tools.training.evaluate import Gallery, mixed, retrieval_metrics

    if isinstance(feats, Features):
        feats = {feats.pairs.catalog: feats}
    galleries, shared = {}, []
    for name, f in feats.items():
        img = image_vectors(model, f, tuned, cache_dir=cache_dir, start=start)
        txt = model.text(torch.from_numpy(np.asarray(f.text, np.float32))).numpy()
        labels = {k: f.pairs.labels[k] for k in ("type", "colour") if k in f.pairs.labels}
        galleries[name] = Gallery(txt, img, f.pairs.test, labels)
        shared.append({"type": f.pairs.labels.get("category"), "colour": f.pairs.labels.get("tax_colour")})
    metrics = {name: retrieval_metrics(g) for name, g in galleries.items()}
    if len(galleries) > 1 and all(v is not None for s in shared for v in s.values()):
        metrics["mixed"] = retrieval_metrics(mixed(list(galleries.values()), shared))
    return metrics


def main(argv: list[str] | None = None) -> None:
    import argparse

    from atelier.tools.settings import apply_offline_defaults

    apply_offline_defaults()
    p = argparse.ArgumentParser(description="Train the compact encoder (atelier train-encoder).")
    p.add_argument("--output", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--catalogs", default="hm,fpi", help="training catalogs (test splits always excluded)")
    p.add_argument("--tune-blocks", type=int, default=0)
    p.add_argument("--tune-epochs", type=int, default=None, help="tune the tail in the last N epochs only")
    p.add_argument("--no-text-adapter", dest="text_adapter", action="store_false")
    p.add_argument("--adapter-hidden", type=int, default=1024)
    p.add_argument("--captions", type=float, default=0.0, help="P(label-derived caption) for FPI items")
    p.add_argument("--aux-weight", type=float, default=0.0, help="auxiliary taxonomy classification weight")
    p.add_argument("--views", default="", help="cached augmented views, e.g. lowres (see features.augment)")
    p.add_argument("--view-catalogs", default="hm", help="catalogs the views are extracted for")
    p.add_argument("--no-trunk-pool", dest="trunk_pool", action="store_false")
    p.add_argument("--fpi-items", type=int, default=None)
    p.add_argument("--no-extract", action="store_true", help="use only what the feature cache holds")
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--tail-lr", type=float, default=1e-4)
    p.add_argument("--mixed-batches", action="store_true")
    p.add_argument("--repeat", default="hm=3", help="passes per epoch by catalog (default hm=3; '' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="evaluate only, do not save")
    p.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    a = p.parse_args(argv)
    t0 = time.time()
    metrics = train_compact(None if a.dry_run else a.output, catalogs=tuple(a.catalogs.split(",")),
                            tune_blocks=a.tune_blocks, tune_epochs=a.tune_epochs, text_adapter=a.text_adapter,
                            adapter_hidden=a.adapter_hidden, captions=a.captions, aux_weight=a.aux_weight,
                            views=tuple(v for v in a.views.split(",") if v),
                            view_catalogs=tuple(a.view_catalogs.split(",")),
                            epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, tail_lr=a.tail_lr,
                            catalog_batches=not a.mixed_batches, seed=a.seed,
                            repeat={k: int(v) for k, v in (x.split("=") for x in a.repeat.split(",") if x)},
                            use_trunk_pool=a.trunk_pool,
                            fpi_items=a.fpi_items, extract_missing=not a.no_extract, hidden=a.hidden,
                            threads=a.threads, log=lambda m: print(m, flush=True))
    print(f"total {time.time() - t0:.0f}s", flush=True)
    if a.json is not None:
        import json

        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "metrics": metrics,
                                      "seconds": time.time() - t0}, indent=1))


if __name__ == "__main__":
    main()
