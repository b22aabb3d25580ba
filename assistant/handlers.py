"""The deterministic router: one handler per parsed intent, registered with ``@handles(intent)`` in
``HANDLERS``. A handler picks a tool and its arguments from the turn (memory + intent), runs it through
``Turn.call`` (so the call is streamed before it runs) and hands over to the tool's presenter."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from atelier.assistant.agent_tools import UPLOADED
from atelier.assistant.events import Event
from atelier.assistant.present import present
from atelier.assistant.replies import render, templates
from atelier.assistant.turnstate import Turn
from atelier.assistant.uploads import last_photo
from atelier.tools.taxonomy import get_taxonomy

Handler = Callable[[Turn], Iterator[Event]]
HANDLERS: dict[str, Handler] = {}


def handles(*intents: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for intent in intents:
            HANDLERS[intent] = handler
        return handler

    return register


def run(turn: Turn, tool: str, args: dict[str, Any]) -> Iterator[Event]:
    """Call ``tool`` and show its output."""
    yield from turn.call(tool, args)
    yield from present(turn, tool)


def restore_photo(turn: Turn) -> bool:
    """Put the session's last uploaded photo back on the turn (a follow-up about "it"); False if none."""
    photo = last_photo(turn.memory)
    if photo is not None:
        turn.ctx.image = photo
    return photo is not None


def subject(turn: Turn) -> str | None:
    """The product (id) or photo (``UPLOADED``) a question, description or outfit is about."""
    update, memory = turn.update, turn.memory
    if update.referenced or update.similar:
        return (update.referenced or update.similar)[-1]
    if turn.ctx.image is not None:
        return UPLOADED
    if memory.focus:
        return memory.focus
    if memory.image and restore_photo(turn):
        return UPLOADED
    if turn.intent.this and memory.liked:
        return memory.liked[-1]
    return None


def required_subject(turn: Turn) -> str | None:
    """``subject(turn)``, or ``None`` with the "which one?" reply set."""
    found = subject(turn)
    if found is None:
        turn.template = render("errors", "no_reference")
    return found


@handles("search", "refine")
def handle_search(turn: Turn) -> Iterator[Event]:
    if turn.update.unresolved and not (turn.intent.has_change() or turn.update.referenced):
        turn.template = render("errors", "unresolved", shown=len(turn.memory.shown),
                               ranks=", ".join(str(r) for r in turn.update.unresolved))
        return
    args = turn.ctx.compose().args(turn.k)
    if turn.update.similar:
        args["exclude_ids"] = list(dict.fromkeys(args.get("exclude_ids", []) + turn.update.similar))
    yield from run(turn, "search_products", args)


@handles("composed")
def handle_composed(turn: Turn) -> Iterator[Event]:
    update, ctx = turn.update, turn.ctx
    if ctx.image is not None or (not (update.similar or update.referenced or turn.memory.focus)
                                 and turn.memory.image and restore_photo(turn)):
        reference = UPLOADED
    else:
        reference = (update.similar or update.referenced or [turn.memory.focus])[-1]
        if reference is None:
            turn.template = render("errors", "no_reference")
            return
    ctx.data["reference"] = reference
    yield from run(turn, "find_similar", {"reference": reference, "change": turn.intent.change, "k": turn.k})


@handles("outfit")
def handle_outfit(turn: Turn) -> Iterator[Event]:
    if (about := required_subject(turn)) is None:
        return
    must = turn.intent.must
    target = (must.get("group") or [None])[0]
    if target is None and must.get("category"):
        target = get_taxonomy().group_of(must["category"][0])
    args: dict[str, Any] = {"product_ids": [] if about == UPLOADED else [about], "k": 3 if target is None else 5}
    if target:
        args["target_group"] = target
    turn.ctx.data["subject"] = about
    yield from run(turn, "complete_outfit", args)


@handles("question")
def handle_question(turn: Turn) -> Iterator[Event]:
    if (about := required_subject(turn)) is None:
        return
    yield from run(turn, "answer_question", {"product_id": about, "question": turn.message})


@handles("describe")
def handle_describe(turn: Turn) -> Iterator[Event]:
    if turn.ctx.image is None and not restore_photo(turn):
        turn.template = render("errors", "no_image")
        return
    yield from run(turn, "describe_image", {})


@handles("compare")
def handle_compare(turn: Turn) -> Iterator[Event]:
    ids = turn.update.referenced[:2]
    if len(ids) < 2:
        turn.template = render("compare", "missing")
        return
    yield from run(turn, "compare_products", {"first_id": ids[0], "second_id": ids[1]})


@handles("help")
def handle_help(turn: Turn) -> Iterator[Event]:
    text = turn.message.lower()
    key = next((key for key, pattern in templates()["help_replies"].items() if re.search(pattern, text)), "help")
    turn.template = templates()["help"][key].strip()
    yield from ()


@handles("start_over")
def handle_start_over(turn: Turn) -> Iterator[Event]:
    turn.template = render("start_over", "done")
    yield from ()
