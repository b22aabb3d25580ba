"""The ``none`` backend: the agent's template reply, streamed word by word.

No model, no network, fully deterministic; it is what every other backend falls back to. Streaming
it in chunks keeps the UI code path the same as with a real model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from atelier.assistant.llm.base import ReplyContext
from atelier.tools.settings import Settings


def word_chunks(text: str, words: int = 4) -> Iterator[str]:
    """``text`` in chunks of a few words; joining them gives ``text`` back exactly."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    for start in range(0, len(pieces), words):
        yield "".join(pieces[start:start + words])


class TemplateBackend:
    """Yields ``context.template_reply`` unchanged (it is built from the results, so it is grounded)."""

    name = "none"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def stream_reply(self, system: str, messages: list[dict[str, Any]], context: ReplyContext) -> Iterator[str]:
        yield from word_chunks(context.template_reply)

    def chat_model(self) -> None:
        return None
