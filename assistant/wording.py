"""The reply's words: the turn's template reply as is, or an LLM backend's wording of it, grounded once in
the products shown and the tool facts (``assistant.grounding``). A backend failure falls back to the
template, so a reply is never lost to a broken endpoint."""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator
from typing import Any

from atelier.assistant.events import Event, TextDeltaEvent
from atelier.assistant.grounding import GroundedStream
from atelier.assistant.llm.base import ReplyContext
from atelier.assistant.llm.prompts import system_prompt
from atelier.assistant.turnstate import Turn

log = logging.getLogger(__name__)


def chunks(text: str, words: int = 4) -> Iterator[str]:
    parts = re.findall(r"\S+\s*", text)
    for i in range(0, len(parts), words):
        yield "".join(parts[i:i + words])


def reply_events(turn: Turn, backend: Any | None, history: list[dict[str, str]]) -> Generator[Event, None, str]:
    """Stream the reply (``history``: earlier OpenAI-style messages); returns its text."""
    if backend is not None:
        try:
            text = yield from llm_reply(backend, turn, history)
            if text:
                return text
        except Exception as exc:  # noqa: BLE001 - any backend failure falls back to the template
            log.warning("LLM reply failed (%s); using the template reply", exc)
    for chunk in chunks(turn.template):
        yield TextDeltaEvent(text=chunk)
    return turn.template


def llm_reply(backend: Any, turn: Turn, history: list[dict[str, str]]) -> Generator[Event, None, str]:
    """The backend's wording, grounded exactly once: model backends already return a ``GroundedStream``
    (``ReplyContext.ground``); any other stream is grounded here."""
    honesty = turn.ctx.data.get("honesty")
    context = ReplyContext(intent=turn.intent.intent, results=turn.results, memory=turn.memory.summary(),
                           template_reply=turn.template, user_message=turn.message, facts=turn.ctx.facts,
                           unmatched=list(honesty.unmatched) if honesty is not None and not honesty.match else [])
    messages = history + [{"role": "user", "content": turn.message}]
    stream = backend.stream_reply(system_prompt(), messages, context)
    if not isinstance(stream, GroundedStream):
        stream = context.ground(stream)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        yield TextDeltaEvent(text=piece)
    return "".join(pieces).strip()
