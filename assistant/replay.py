"""Conversation replay: YAML files of turns and expectations, run against the real assistant.

A conversation is a list of turns; each turn says something (optionally with a photo from the datasets
folder), clicks a shown result (like / dislike / more_like_this / focus by rank), forgets one memory item
(``forget: {kind, facet, value}``, as the × on a memory chip does), or several (click, forget, then say), and
states what must hold afterwards: the intent, the tools called, the constraints in memory, properties of
all / none / a fraction of the top-k results, ids in or out of the top-k, words in the reply. Format:
``docs/agent.md``. ``session_export.export_session`` writes a logged session in the same format.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from atelier.assistant.events import ErrorEvent, Event, MemoryEvent, ProductsEvent, ToolCallEvent
from atelier.assistant.replay_format import (  # noqa: F401 - the format's names are re-exported
    CLICK_KINDS, REF, STAT, Conversation, Expect, ForgetSpec, MemoryCheck, ReplayResult, ReplyCheck, ResultCheck,
    TurnSpec, load_conversation)
from atelier.tools.schema import SearchResult
from atelier.tools.settings import Settings, get_settings


# ---- checking ---------------------------------------------------------------------------------------
def field_value(result: SearchResult, name: str) -> Any:
    if name.startswith("attributes."):
        return (result.product.attributes if result.product else {}).get(name.split(".", 1)[1])
    if name == "description":
        return result.product.description if result.product else ""
    if name == "text":
        return f"{result.title}. {result.product.description if result.product else ''}"
    return getattr(result, name, None)


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def condition_holds(value: Any, condition: Any) -> bool:
    """``condition``: a value (equals), or {eq, ne, in, not_in, lt, le, gt, ge, contains, not_contains,
    matches (a regular expression)}."""
    if not isinstance(condition, dict):
        return _norm(value) == _norm(condition)
    for op, target in condition.items():
        if op == "eq" and _norm(value) != _norm(target):
            return False
        if op == "ne" and _norm(value) == _norm(target):
            return False
        if op == "in" and _norm(value) not in [_norm(t) for t in target]:
            return False
        if op == "not_in" and _norm(value) in [_norm(t) for t in target]:
            return False
        if op in ("lt", "le", "gt", "ge"):
            if value is None:
                return False
            if not {"lt": value < target, "le": value <= target, "gt": value > target, "ge": value >= target}[op]:
                return False
        if op == "matches" and not re.search(str(target), str(value or ""), re.I):
            return False
        if op == "contains" and str(target).lower() not in str(value or "").lower():
            return False
        if op == "not_contains" and str(target).lower() in str(value or "").lower():
            return False
    return True


def matches(result: SearchResult, where: dict[str, Any]) -> bool:
    return all(condition_holds(field_value(result, f), c) for f, c in where.items())


def describe(result: SearchResult, rank: int, fields: Iterable[str]) -> str:
    shown = ", ".join(f"{f}={field_value(result, f)!r}" for f in fields if f not in ("text", "description"))
    return f"#{rank} [{result.id}] {result.title!r} {shown}".rstrip()


class _Run:
    """State of one replay: results shown per turn, for ``@turn.rank`` references."""

    def __init__(self) -> None:
        self.shown: dict[int, list[str]] = {}
        self.prices: dict[int, list[float]] = {}
        self.memory: dict[str, Any] = {}

    def stat(self, ref: str) -> float | None:
        m = STAT.match(ref)
        prices = [p for p in self.prices.get(int(m.group(1)), []) if p is not None] if m else []
        if m and m.group(2).endswith(".price"):
            ranked = self.prices.get(int(m.group(1)), [])
            rank = int(m.group(2).split(".")[0])
            index = rank - 1 if rank > 0 else len(ranked) + rank
            return ranked[index] if 0 <= index < len(ranked) else None
        if not prices:
            return None
        return {"median_price": statistics.median, "min_price": min, "max_price": max}[m.group(2)](prices)

    def expand(self, value: Any) -> Any:
        """Replace ``@turn.median_price``-style numbers inside an expectation."""
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if isinstance(value, str) and STAT.match(value):
            return self.stat(value)
        return value

    def resolve(self, ref: str) -> list[str]:
        if ref == "@disliked":
            return list(self.memory.get("disliked", []))
        if ref == "@liked":
            return list(self.memory.get("liked", []))
        m = REF.match(str(ref))
        if not m:
            return [str(ref)]
        turn = int(m.group(1))
        shown = self.shown.get(turn, [])
        if m.group(2) == "*":
            return list(shown)
        rank = int(m.group(2))
        index = rank - 1 if rank > 0 else len(shown) + rank
        return [shown[index]] if 0 <= index < len(shown) else [f"<no result {ref}>"]


def check_results(check: ResultCheck, results: list[SearchResult], run: _Run) -> list[str]:
    check = ResultCheck.model_validate(run.expand(check.model_dump()))
    top = results[:check.top]
    problems: list[str] = []
    label = f"top {check.top}"
    if check.count is not None:
        low, high = check.count.get("min", 0), check.count.get("max", 10**9)
        if not low <= len(top) <= high:
            problems.append(f"results: {label} has {len(top)} products, expected between {low} and {high}")
    if check.all is not None:
        bad = [(i, r) for i, r in enumerate(top, start=1) if not matches(r, check.all)]
        if not top:
            problems.append(f"results: all {check.all} expected, but nothing was shown")
        elif bad:
            lines = "; ".join(describe(r, i, check.all) for i, r in bad[:3])
            problems.append(f"results: all of {label} should have {check.all}; {len(bad)}/{len(top)} do not: {lines}")
    if check.none is not None:
        bad = [(i, r) for i, r in enumerate(top, start=1) if matches(r, check.none)]
        if bad:
            lines = "; ".join(describe(r, i, check.none) for i, r in bad[:3])
            problems.append(f"results: none of {label} should have {check.none}; {len(bad)} do: {lines}")
    if check.fraction is not None:
        where = check.where or {}
        good = sum(matches(r, where) for r in top)
        share = good / len(top) if top else 0.0
        if share + 1e-9 < check.fraction:
            problems.append(f"results: at least {check.fraction:.0%} of {label} should have {where}; "
                            f"{good}/{len(top)} ({share:.0%}) do")
    ids = [r.id for r in top]
    for ref in check.includes:
        for pid in run.resolve(ref):
            if pid not in ids:
                problems.append(f"results: {ref} ({pid}) should be in the {label}: {ids}")
    for ref in check.excludes:
        for pid in run.resolve(ref):
            if pid in ids:
                problems.append(f"results: {ref} ({pid}) should not be in the {label}, found at #{ids.index(pid) + 1}")
    return problems


def _same_values(a: dict[str, list[str]], b: dict[str, list[str]]) -> bool:
    return {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}


def check_memory(check: MemoryCheck, memory: dict[str, Any], run: _Run) -> list[str]:
    check = MemoryCheck.model_validate(run.expand(check.model_dump()))
    problems = []
    c = memory.get("constraints", {})
    if check.empty is not None:
        empty = not (c.get("must") or c.get("avoid") or c.get("price_min") is not None
                     or c.get("price_max") is not None or memory.get("anchors"))
        if empty != check.empty:
            problems.append(f"memory: expected {'empty' if check.empty else 'non-empty'} constraints, got {c}")
    for name in ("must", "avoid"):
        want = getattr(check, name)
        if want is not None and not _same_values(c.get(name, {}), want):
            problems.append(f"memory.{name}: expected {want}, got {c.get(name, {})}")
    for name in ("price_min", "price_max"):
        want = getattr(check, name)
        if want == "unset":
            continue
        got = c.get(name)
        ok = got is None if want is None else (got is not None and condition_holds(got, want)) if isinstance(
            want, dict) else (got is not None and abs(float(got) - float(want)) < 0.01)
        if not ok:
            problems.append(f"memory.{name}: expected {want}, got {got}")
    if check.preferences is not None and sorted(memory.get("preferences", [])) != sorted(check.preferences):
        problems.append(f"memory.preferences: expected {check.preferences}, got {memory.get('preferences')}")
    for name in ("liked", "disliked"):
        refs = getattr(check, name)
        if refs is None:
            continue
        want = [pid for ref in refs for pid in run.resolve(ref)]
        if sorted(memory.get(name, [])) != sorted(want):
            problems.append(f"memory.{name}: expected {want}, got {memory.get(name, [])}")
    if check.anchors is not None and len(memory.get("anchors", [])) != check.anchors:
        problems.append(f"memory.anchors: expected {check.anchors}, got {len(memory.get('anchors', []))}")
    return problems


def _last_memory(events: Sequence[Event]) -> dict[str, Any] | None:
    found = [e.memory for e in events if isinstance(e, MemoryEvent)]
    return found[-1] if found else None


def check_turn(expect: Expect, events: Sequence[Event], run: _Run) -> list[str]:
    problems: list[str] = []
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    if errors and not expect.error:
        problems.append(f"error: {errors[0].message} ({errors[0].code})")
    if expect.error and not errors:
        problems.append("error: expected an error event, got none")
    memory = _last_memory(events) or run.memory
    results = [r for e in events if isinstance(e, ProductsEvent) for r in e.results]
    calls = [e.name for e in events if isinstance(e, ToolCallEvent)]
    if expect.intent is not None and memory.get("last_intent") != expect.intent:
        problems.append(f"intent: expected {expect.intent}, got {memory.get('last_intent')}")
    if expect.tools is not None:
        if expect.tools == [] and calls:
            problems.append(f"tools: expected none, got {calls}")
        missing = [t for t in expect.tools if t not in calls]
        if missing:
            problems.append(f"tools: expected {expect.tools}, got {calls}")
    if expect.memory is not None:
        problems += check_memory(expect.memory, memory, run)
    for check in expect.results:
        problems += check_results(check, results, run)
    reply = " ".join(e.reply for e in events if e.type == "done")
    if expect.reply is not None:
        low = reply.lower()
        for word in expect.reply.contains:
            if word.lower() not in low:
                problems.append(f"reply: should contain {word!r}: {reply!r}")
        for word in expect.reply.excludes:
            if word.lower() in low:
                problems.append(f"reply: should not contain {word!r}: {reply!r}")
        if expect.reply.any_of and not any(w.lower() in low for w in expect.reply.any_of):
            problems.append(f"reply: should contain one of {expect.reply.any_of}: {reply!r}")
    return problems


# ---- running ----------------------------------------------------------------------------------------
def run_conversation(conversation: Conversation, assistant: Any, settings: Settings | None = None,
                     path: str = "") -> ReplayResult:
    """Play every turn in a fresh session and collect every unmet expectation."""
    settings = settings or get_settings()
    started = time.perf_counter()
    session = assistant.new_session()
    run = _Run()
    failures: list[str] = []
    for number, spec in enumerate(conversation.turns, start=1):
        events: list[Event] = []
        label = f"turn {number}"
        if spec.click is not None:
            kind, target = next(iter(spec.click.items()))
            shown = [item["id"] for item in run.memory.get("shown", [])]
            if isinstance(target, int):
                index = target - 1 if target > 0 else len(shown) + target
                if not 0 <= index < len(shown):
                    failures.append(f"{label} (click {kind} {target}): only {len(shown)} results were shown")
                    continue
                product_id = shown[index]
            else:
                product_id = run.resolve(str(target))[0]
            if kind == "focus":
                events.append(MemoryEvent(memory=assistant.focus(session, product_id)))
            else:
                events += assistant.feedback(session, product_id, kind)
            label += f" (click {kind} {target})"
        if spec.forget is not None:
            f = spec.forget
            label += " (forget " + " ".join(str(v) for v in (f.kind, f.facet, f.value) if v is not None) + ")"
            try:
                events.append(MemoryEvent(memory=assistant.forget(session, f.kind, f.facet, f.value)))
            except ValueError as exc:
                failures.append(f"{label}: {exc}")
                continue
        if spec.say is not None or spec.image is not None:
            image = str(settings.datasets / spec.image) if spec.image else None
            said = list(assistant.turn(session, spec.say or "", image=image))
            events = [e for e in events if not isinstance(e, ProductsEvent)] + said
            label += f" {spec.say!r}" if spec.say else f" [photo {spec.image}]"
        memory = _last_memory(events)
        problems = check_turn(spec.expect, events, run)
        if memory is not None:
            run.memory = memory
        shown_now = [r for e in events if isinstance(e, ProductsEvent) for r in e.results]
        if shown_now:
            run.shown[number] = [r.id for r in shown_now]
            run.prices[number] = [r.price for r in shown_now]
        failures += [f"{label}: {p}" for p in problems]
    return ReplayResult(name=conversation.name, path=path, turns=len(conversation.turns), failures=failures,
                        seconds=round(time.perf_counter() - started, 2))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.yaml")) if p.is_dir() else [p]
    return out


def run_files(paths: Iterable[str | Path], assistant: Any | None = None) -> list[ReplayResult]:
    if assistant is None:
        from atelier.assistant.turn import Assistant

        assistant = Assistant()
    results = []
    for path in expand_paths(paths):
        try:
            conversation = load_conversation(path)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            results.append(ReplayResult(name=path.stem, path=str(path), turns=0, failures=[f"cannot load: {exc}"]))
            continue
        results.append(run_conversation(conversation, assistant, path=str(path)))
    return results


def format_report(results: Sequence[ReplayResult]) -> str:
    lines = []
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"{mark} {r.name} ({r.turns} turns, {r.seconds:.1f}s) {r.path}")
        for failure in r.failures:
            lines.append(f"    - {failure}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed}/{len(results)} conversations passed")
    return "\n".join(lines)
