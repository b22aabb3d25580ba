"""Presenters: after a tool ran, show its products and set the turn's template reply.

One presenter per tool, registered with ``@presents(tool_name)`` in ``PRESENTERS``, so the deterministic
handlers and the tool-calling router (which learns only afterwards which tool the model chose) show a
tool's output the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from atelier.assistant.agent_tools import UPLOADED
from atelier.assistant.events import Event
from atelier.assistant.replies import (honest_reply, honest_title, item_text, price_text, render, results_reply,
                                       what_text)
from atelier.assistant.turnstate import Turn
from atelier.tools.schema import UNKNOWN, SearchResult

Presenter = Callable[[Turn], Iterator[Event]]
PRESENTERS: dict[str, Presenter] = {}


def presents(tool: str) -> Callable[[Presenter], Presenter]:
    def register(presenter: Presenter) -> Presenter:
        PRESENTERS[tool] = presenter
        return presenter

    return register


def present(turn: Turn, tool: str) -> Iterator[Event]:
    """Show what ``tool`` left on the turn's context (search results for an unknown tool)."""
    return PRESENTERS.get(tool, present_results)(turn)


@presents("search_products")
def present_results(turn: Turn) -> Iterator[Event]:
    results = turn.ctx.results
    honesty = turn.ctx.data.get("honesty")
    turn.memory.honesty = honesty
    yield turn.show(results, title=honest_title(honesty), honesty=honesty)
    what = what_text(turn.memory.constraints, fallback=_fallback_noun(turn))
    section = turn.intent.intent if turn.intent.intent in ("search", "refine") else "search"
    extra = {"changes_sentence": changes_sentence(turn)} if section == "refine" else {}
    turn.template = honest_reply(section, results, honesty, what=what, **extra)
    if turn.update.notes and "no price to compare" in " ".join(turn.update.notes):
        turn.template = "I have no prices to compare with yet. " + turn.template


def changes_sentence(turn: Turn) -> str:
    """What this turn changed, in words ("Now: blue; not black; up to 27.00.")."""
    i = turn.intent
    parts = [" or ".join(values) for values in i.must.values()]
    parts += ["not " + " or ".join(values) for values in i.avoid.values()]
    parts += [" or ".join(values) + " allowed again" for values in i.allow.values()]
    c = turn.memory.constraints
    if "cheaper" in i.relative and c.price_max is not None:
        parts.append(f"up to {c.price_max:.2f}")
    if "pricier" in i.relative and c.price_min is not None:
        parts.append(f"from {c.price_min:.2f}")
    parts += [p.replace("_", " ") for p in i.relative if p not in ("cheaper", "pricier")]
    flags = ((i.show_more, "new options"), (turn.update.similar, "more like your pick"),
             (turn.update.liked, "noted what you like"), (turn.update.disliked, "hid what you disliked"))
    parts += [text for on, text in flags if on]
    return ("Now: " + "; ".join(parts) + ". ") if parts else ""


def _fallback_noun(turn: Turn) -> str:
    details = " ".join(d.text for d in turn.memory.details[-2:])
    return f"results for \"{details}\"" if details else "items"


def subject_text(turn: Turn, subject: str | None) -> str:
    """How the reply names what a question, outfit or composed search was about."""
    if subject == UPLOADED:
        return "your photo"
    if subject is None:
        return "that item"
    item = turn.memory.shown_item(subject)
    if item:
        return item.title
    product = turn.ctx.product(subject)
    return product.title if product else "that item"


@presents("find_similar")
def present_composed(turn: Turn) -> Iterator[Event]:
    results = turn.ctx.results
    yield turn.show(results)
    reference = turn.ctx.data.get("reference")
    change = turn.intent.change
    turn.template = results_reply("composed", results, reference=subject_text(turn, reference),
                                  change=f", {change}" if change else "")


@presents("complete_outfit")
def present_outfit(turn: Turn) -> Iterator[Event]:
    for group, items in turn.ctx.slots:
        yield turn.show(items, title=f"{group} to go with it", slot=group)
    reference = subject_text(turn, turn.ctx.data.get("subject"))
    if not turn.ctx.slots:
        turn.template = render("outfit", "empty", reference=reference)
        return
    picks = "; ".join(f"{group}: {item_text(items[0])}" for group, items in turn.ctx.slots)
    turn.template = render("outfit", "results", reference=reference,
                           slots=", ".join(group for group, _ in turn.ctx.slots), picks=picks)


@presents("answer_question")
def present_answer(turn: Turn) -> Iterator[Event]:
    answer = turn.ctx.data.get("answer")
    subject = turn.ctx.data.get("answer_subject")
    if subject and subject != UPLOADED:
        turn.memory.focus = subject
        product = turn.ctx.product(subject)
        if product is not None:
            yield turn.show([SearchResult.from_product(product, 1.0, "the item you asked about")],
                            title="About this item", remember=False)
    reference = subject_text(turn, subject)
    if answer is None:
        turn.template = render("errors", "no_reference")
    else:
        turn.template = render("question", "answer" if answer.answerable else "unknown", answer=answer.answer,
                               reference=reference)


@presents("describe_image")
def present_attributes(turn: Turn) -> Iterator[Event]:
    attributes: dict[str, dict[str, Any]] = turn.ctx.data.get("attributes", {})
    known = {k: v for k, v in attributes.items() if v.get("value") not in (None, "", UNKNOWN)}
    order = ("colour", "pattern", "category", "gender")
    names = [k for k in order if k in known] + [k for k in known if k not in order]
    words = [f"{known[k]['value']} ({k}, {known[k]['confidence']:.0%} sure)" for k in names]
    confident = any(v.get("confidence", 0) >= 0.5 for v in known.values())
    turn.template = render("describe", "results" if confident else "unsure",
                           attributes=", ".join(words) if words else "nothing I can name")
    yield from ()


@presents("compare_products")
def present_comparison(turn: Turn) -> Iterator[Event]:
    comparison = turn.ctx.data.get("comparison")
    if not comparison:
        turn.template = render("compare", "missing")
        return
    yield turn.show(turn.ctx.results, title="Side by side", remember=False)
    titles = comparison["titles"]
    differences = []
    prices = comparison["prices"]
    cheaper = comparison.get("cheaper")
    if cheaper is not None:
        differences.append(f"{titles[cheaper]} is cheaper ({price_text(prices[cheaper])} vs "
                           f"{price_text(prices[1 - cheaper])})")
    elif prices[0] is not None and prices[0] == prices[1]:
        differences.append(f"both cost {price_text(prices[0])}")
    for facet, (a, b) in comparison["different"].items():
        differences.append(f"{facet} {a} vs {b}")
    same = comparison["same"]
    same_text = ("; both " + ", ".join(v for v in same.values() if v != UNKNOWN)) if same else ""
    turn.template = render("compare", "results", first_title=titles[0], second_title=titles[1],
                           differences="; ".join(differences) or "very similar", same=same_text)
