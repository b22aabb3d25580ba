"""A tool-calling chat model as the router: given the turn's memory and shown results, the model picks the
tool and its arguments (``langchain.agents.create_agent`` over the same tools the deterministic handlers
call). Any failure, or no tool call at all, hands the turn back to the deterministic handler."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator
from typing import Any

from atelier.assistant.agent_tools import ToolContext, build_tools
from atelier.assistant.events import Event
from atelier.assistant.llm.prompts import load_prompt
from atelier.assistant.present import present
from atelier.assistant.replies import price_text
from atelier.assistant.turnstate import Turn

log = logging.getLogger(__name__)

MODEL_ROUTED = ("search", "refine", "composed", "outfit", "question", "describe", "compare")


def run_tool_agent(model: Any, ctx: ToolContext, message: str, system: str = "") -> Iterator[Event]:
    """Let a tool-calling chat model drive the tools; yields each tool call as it is made. The products the
    tools produced stay on ``ctx`` for the presenter to show."""
    from langchain.agents import create_agent

    agent = create_agent(model, tools=list(build_tools(ctx).values()), system_prompt=system or None)
    for _update in agent.stream({"messages": [{"role": "user", "content": message}]}, stream_mode="updates"):
        yield from ctx.drain()
    yield from ctx.drain()


def route_with_model(turn: Turn, model: Any) -> Generator[Event, None, bool]:
    """Let a tool-calling chat model pick the tool and its arguments (the memory was already updated by the
    parser, and ``search_products`` composes the memory's cascade). Returns False when the model called no
    tool or failed, so the deterministic handler runs instead."""
    try:
        yield from run_tool_agent(model, turn.ctx, turn.message, tool_system_prompt(turn))
    except Exception as exc:  # noqa: BLE001 - a broken endpoint must not break the turn
        log.warning("tool-calling model failed (%s); routing deterministically", exc)
        return False
    if not turn.ctx.calls:
        return False
    last = turn.ctx.calls[-1]
    if last.name == "find_similar":
        turn.ctx.data.setdefault("reference", last.args.get("reference"))
    yield from present(turn, last.name)
    return True


def tool_system_prompt(turn: Turn) -> str:
    """The router's system prompt (``prompts/llm/tool_router.md``): the memory and the numbered shown results."""
    shown = "\n".join(f"{i}. id={item.id} {item.title} ({item.colour} {item.category}, "
                      f"{price_text(item.price)})" for i, item in enumerate(turn.memory.shown, start=1))
    photo = "The shopper attached a photo: use reference \"uploaded\"." if turn.ctx.image is not None else ""
    return load_prompt("llm/tool_router.md").format(memory=json.dumps(turn.memory.summary(), default=str),
                                                    shown=shown or "(none)", photo=photo)
