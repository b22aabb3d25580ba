"""One turn in progress: what a handler reads (memory, parsed intent, tool context) and what it leaves for the
reply (results to show, the template reply). Handlers, presenters and the router share it."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from atelier.assistant.agent_tools import ToolContext
from atelier.assistant.events import Event, ProductsEvent
from atelier.memory import SessionMemory, TurnUpdate
from atelier.memory.intent import TurnIntent
from atelier.tools.relevance import Honesty
from atelier.tools.schema import SearchResult


@dataclass
class Turn:
    """One turn in progress: what the handler reads and what it leaves for the reply."""

    memory: SessionMemory
    intent: TurnIntent
    update: TurnUpdate
    ctx: ToolContext
    message: str
    k: int = 10
    results: list[SearchResult] = field(default_factory=list)
    template: str = ""
    remember_results: bool = False

    def call(self, name: str, args: dict[str, Any]) -> Generator[Event, None, str]:
        """Announce a tool call (streamed before it runs), then run it."""
        return (yield from self.ctx.call(name, args))

    def show(self, results: list[SearchResult], title: str | None = None, slot: str | None = None,
             remember: bool = True, honesty: Honesty | None = None) -> ProductsEvent:
        self.results.extend(results)
        self.remember_results = self.remember_results or remember
        return ProductsEvent(results=results, title=title, slot=slot, honesty=honesty)
