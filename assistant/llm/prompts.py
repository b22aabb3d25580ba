"""Turning a :class:`ReplyContext` into chat messages.

Prompt wording lives in ``prompts/`` (``system.md``, ``llm/*.md``) so it can be read and changed
without touching code; this module only fills the templates. Every piece of catalog or shopper text
passes through :func:`assistant.grounding.as_data` (or ``sanitize`` for the tiny local model) first.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from atelier.assistant.grounding import as_data, sanitize
from atelier.assistant.llm.base import ReplyContext
from atelier.tools.schema import SearchResult
from atelier.tools.settings import PROMPTS_DIR

MAX_PRODUCTS = 8
MAX_HISTORY = 8
MAX_DESCRIBED = 4


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>`` (e.g. ``"system.md"``, ``"llm/local.md"``), without trailing newlines."""
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").rstrip("\n")


def system_prompt() -> str:
    """The grounded shopping assistant's system prompt (``prompts/system.md``)."""
    return load_prompt("system.md")


def format_price(result: SearchResult) -> str:
    """The price exactly as a reply may repeat it, or ``"no price"``."""
    if result.price is None:
        return "no price"
    currency = result.product.currency if result.product is not None else ""
    return f"{currency} {result.price:.2f}".strip()


def product_lines(results: list[SearchResult], *, quoted: bool = True) -> str:
    """Numbered product lines; ``quoted`` wraps each title in data markers (too much for tiny models)."""
    lines = []
    for number, result in enumerate(results[:MAX_PRODUCTS], start=1):
        if not quoted:
            lines.append(f"{number}. {sanitize(result.title, 80)} ({result.colour}) - {format_price(result)}")
            continue
        facets = ", ".join(v for v in (result.colour, result.pattern, result.category, result.gender)
                           if v and v != "unknown")
        line = f"{number}. {as_data(result.title, label='title', limit=120)} | {facets} | price: {format_price(result)}"
        description = result.product.description if result.product is not None else ""
        if description and number <= MAX_DESCRIBED:
            line += f" | {as_data(description, label='description', limit=240)}"
        lines.append(line)
    return "\n".join(lines) or "(none)"


def render_context(context: ReplyContext) -> str:
    """The per-turn context block appended to the system prompt."""
    facts = "\n".join(f"- {as_data(f, label='fact', limit=300)}" for f in context.facts) or "(none)"
    memory = as_data(json.dumps(context.memory, default=str, ensure_ascii=False), label="memory", limit=600) \
        if context.memory else "(none)"
    template = as_data(context.template_reply, label="draft", limit=800) if context.template_reply else "(none)"
    return load_prompt("llm/context.md").format(
        intent=sanitize(context.intent, 40), products=product_lines(context.results), facts=facts,
        memory=memory, template=template)


def build_messages(system: str, messages: list[dict[str, Any]], context: ReplyContext) -> list[dict[str, str]]:
    """OpenAI-style messages: system prompt plus context, then recent history with shopper text quoted.

    Tool and system turns from the history are dropped (the context already carries their results);
    the current ``user_message`` is appended when the history does not end with it.
    """
    out = [{"role": "system", "content": f"{system}\n\n{render_context(context)}"}]
    history = [m for m in messages if m.get("role") in ("user", "assistant") and m.get("content")]
    last_user = next((m["content"] for m in reversed(history) if m["role"] == "user"), None)
    if context.user_message and context.user_message != last_user:
        history.append({"role": "user", "content": context.user_message})
    for message in history[-MAX_HISTORY:]:
        content = str(message["content"])
        if message["role"] == "user":
            out.append({"role": "user", "content": as_data(content, label="shopper", limit=800)})
        else:
            out.append({"role": "assistant", "content": sanitize(content, 800)})
    return out


def build_local_messages(context: ReplyContext) -> list[dict[str, str]]:
    """The very constrained prompt for the 135M-parameter local model: short list, one clear ask."""
    missing = ", ".join(context.unmatched)
    user = load_prompt("llm/local.md").format(
        products=product_lines(context.results[:3], quoted=False),
        request=sanitize(context.user_message, 160) or "something nice",
        honesty=load_prompt("llm/local_partial.md").format(missing=sanitize(missing, 80)) if missing else "")
    return [{"role": "system", "content": load_prompt("llm/local_system.md")}, {"role": "user", "content": user}]
