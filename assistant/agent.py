"""The dialogue agent: one ``Assistant.turn`` that every interface consumes as a stream of typed events.

A turn is: parse the message (``assistant.parser``) → write it into the session memory (``memory.update``)
→ run the intent's handler from the ``HANDLERS`` registry, which calls tools (``assistant.agent_tools``,
each call streamed as a ``ToolCallEvent``) → show products → word the reply (template, or an LLM backend
grounded in the shown products) → persist the memory and log the turn to SQLite.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from atelier.assistant.agent_tools import UPLOADED, CapabilityUnavailable, TextVectors, ToolContext, build_tools
from atelier.assistant.events import (DoneEvent, ErrorEvent, Event, MemoryEvent, ProductsEvent, StatusEvent,
    TextDeltaEvent)
from atelier.assistant.parser import ParseContext, TurnIntent, TurnParser, get_parser
from atelier.assistant.replies import item_text, price_text, render, results_reply, templates, what_text
from atelier.memory import (FEEDBACK_KINDS, FORGET_KINDS, CascadeWeights, ForgetError, NotRemembered, SessionMemory, SessionNotFound,  # noqa: F401 - re-exported
    SessionStore, TurnRecord, TurnUpdate, apply_feedback, apply_turn, forget_item, record_shown)
from atelier.tools.errors import InputError
from atelier.tools.schema import UNKNOWN, SearchResult
from atelier.tools.search import ProductSearch
from atelier.tools.settings import Settings, get_settings

log = logging.getLogger(__name__)

HISTORY_TURNS = 6


class FeedbackError(InputError):
    """A click the assistant cannot apply (unknown kind)."""

    code = "bad_feedback"


@dataclass
class Turn:
    """One turn in progress: what the handler reads and what it leaves for the reply."""

    assistant: "Assistant"
    memory: SessionMemory
    intent: TurnIntent
    update: TurnUpdate
    ctx: ToolContext
    message: str
    results: list[SearchResult] = field(default_factory=list)
    template: str = ""
    remember_results: bool = False

    @property
    def tools(self) -> dict[str, Any]:
        if "_tools" not in self.ctx.data:
            self.ctx.data["_tools"] = build_tools(self.ctx)
        return self.ctx.data["_tools"]

    def call(self, name: str, args: dict[str, Any]) -> Generator[Event, None, str]:
        """Announce a tool call (streamed before it runs), then run it."""
        self.ctx.record(name, args)
        yield from self.ctx.drain()
        self.ctx.data["_announced"] = True
        try:
            return self.tools[name].invoke(args)
        finally:
            self.ctx.data["_announced"] = False

    def show(self, results: list[SearchResult], title: str | None = None, slot: str | None = None,
             remember: bool = True) -> ProductsEvent:
        self.results.extend(results)
        self.remember_results = self.remember_results or remember
        return ProductsEvent(results=results, title=title, slot=slot)


Handler = Callable[[Turn], Iterator[Event]]
HANDLERS: dict[str, Handler] = {}


def handles(*intents: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for intent in intents:
            HANDLERS[intent] = handler
        return handler

    return register


class Assistant:
    """The shopping assistant over one product store and one sessions database."""

    def __init__(self, settings: Settings | None = None, *, engine: ProductSearch | None = None,
                 sessions: SessionStore | None = None, parser: TurnParser | None = None, k: int = 10,
                 weights: CascadeWeights | None = None, llm: Any | None = None,
                 tool_model: Any | None = "auto") -> None:
        self.settings = settings or get_settings()
        self._engine = engine
        self.sessions = sessions or SessionStore(self.settings.db_path)
        self._parser = parser
        self.k = k
        self.weights = weights or CascadeWeights()
        self._llm = llm
        self._tool_model = tool_model
        self._image_vectors: dict[str, Any] = {}
        self._text_vectors: TextVectors | None = None

    @property
    def engine(self) -> ProductSearch:
        if self._engine is None:
            self._engine = ProductSearch.from_settings(self.settings)
        return self._engine

    def context(self, memory: SessionMemory, image: Image.Image | None = None) -> ToolContext:
        """A turn's tool context over this assistant's engine, caches and weights."""
        if self._text_vectors is None:
            self._text_vectors = TextVectors(self.engine.encoder)
        return ToolContext(self.engine, memory, image, self.k, self.weights, self._image_vectors,
                           text_vectors=self._text_vectors)

    @property
    def parser(self) -> TurnParser:
        if self._parser is None:
            self._parser = get_parser()
        return self._parser

    # ---- sessions -----------------------------------------------------------------------------------
    def new_session(self) -> str:
        return self.sessions.create().session_id

    def memory(self, session_id: str) -> dict[str, Any]:
        """The session memory as JSON (raises ``SessionNotFound``)."""
        return self.sessions.load(session_id).model_dump(mode="json")

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """Every logged turn of the session, oldest first (raises ``SessionNotFound``)."""
        return [t.model_dump(mode="json") for t in self.sessions.turns(session_id)]

    def export(self, session_id: str) -> dict[str, Any]:
        """The session as a replay conversation (see ``assistant.replay``)."""
        from atelier.assistant.session_export import export_session

        return export_session(self.sessions.turns(session_id), self.settings)

    # ---- turns --------------------------------------------------------------------------------------
    def turn(self, session_id: str | None, message: str,
             image: Image.Image | str | Path | bytes | None = None) -> Iterator[Event]:
        """Answer one message: status, tool calls, products, reply text, memory, done (or error, done)."""
        started = time.perf_counter()
        yield StatusEvent(message="Looking through the catalog…")
        memory = self.sessions.get_or_create(session_id)
        before = memory.model_copy(deep=True)
        record = TurnRecord(session_id=memory.session_id, turn=memory.turn + 1, message=message or "")
        reply = ""
        try:
            picture, image_key, image_ref = self._accept_image(image)
            record.image = image_ref
            intent = self.parser.parse(message or "", self._parse_context(memory, picture))
            record.intent = intent.model_dump(mode="json", exclude_defaults=True)
            update = apply_turn(memory, intent, image_key=image_key, image_path=self._upload_path(image_key))
            ctx = self.context(memory, picture)
            turn = Turn(self, memory, intent, update, ctx, message or "")
            model = self.tool_model() if intent.intent in MODEL_ROUTED else None
            routed = (yield from route_with_model(turn, model)) if model is not None else False
            if not routed:
                yield from HANDLERS[intent.intent](turn)
            yield from ctx.drain()
            if turn.remember_results:
                record_shown(memory, turn.results)
            if ctx.composed is not None:
                memory.last_query = {"text": ctx.composed.text, "cascade": ctx.composed.components}
            reply = yield from self._reply(turn)
            record.tool_calls = [c.model_dump(exclude={"type"}) for c in ctx.calls]
            record.result_ids = [r.id for r in turn.results]
        except Exception as exc:  # noqa: BLE001 - every failure ends the stream with a clear error
            message_text, code = _error_message(exc)
            if code == "internal":
                log.exception("turn failed")
            record.error = f"{type(exc).__name__}: {exc}"
            self._finish(before, record, started, "")
            yield ErrorEvent(message=message_text, code=code)
            yield DoneEvent(session_id=before.session_id, reply="", turn=before.turn)
            return
        record.reply = reply
        self._finish(memory, record, started, reply)
        yield MemoryEvent(memory=memory.model_dump(mode="json"))
        yield DoneEvent(session_id=memory.session_id, reply=reply, turn=memory.turn)

    def ask(self, session_id: str | None, message: str, image: Any = None) -> list[Event]:
        """A whole turn as a list (tests, CLI ``ask``)."""
        return list(self.turn(session_id, message, image))

    def feedback(self, session_id: str, product_id: str, kind: str) -> list[Event]:
        """A click on a shown product: like / dislike (memory only) or more_like_this (memory + a search).

        Applied at once (not lazily) and returned as the events it produced.
        """
        if kind not in FEEDBACK_KINDS:
            raise FeedbackError(f"unknown feedback {kind!r}; use one of {', '.join(FEEDBACK_KINDS)}")
        started = time.perf_counter()
        memory = self.sessions.load(session_id)
        rank = next((i for i, item in enumerate(memory.shown, start=1) if item.id == product_id), None)
        item = memory.shown_item(product_id)
        title = item.title if item else (self._title(product_id) or product_id)
        apply_feedback(memory, product_id, kind)
        record = TurnRecord(session_id=session_id, turn=memory.turn, kind="feedback", message=f"{kind} {product_id}",
                            intent={"feedback": kind, "product_id": product_id, "rank": rank})
        events: list[Event] = []
        reply = render("feedback", kind if kind != "more_like_this" else "like", title=title)
        if kind == "more_like_this":
            ctx = self.context(memory)
            composed = ctx.compose()
            args = _search_args(composed, self.k)
            args["exclude_ids"] = list(dict.fromkeys(args.get("exclude_ids", []) + [product_id]))
            ctx.record("search_products", args)
            ctx.data["_announced"] = True
            build_tools(ctx)["search_products"].invoke(args)
            events.extend(ctx.drain())
            results = ctx.results
            events.append(ProductsEvent(results=results, title=f"More like {title}"))
            record_shown(memory, results)
            memory.last_query = {"text": composed.text, "cascade": composed.components}
            reply = render("feedback", "more_like_this" if results else "more_like_this_empty", title=title,
                           n=len(results), top=item_text(results[0]) if results else "")
            record.tool_calls = [c.model_dump(exclude={"type"}) for c in ctx.calls]
            record.result_ids = [r.id for r in results]
        events.append(TextDeltaEvent(text=reply))
        record.reply = reply
        self._finish(memory, record, started, reply)
        events.append(MemoryEvent(memory=memory.model_dump(mode="json")))
        events.append(DoneEvent(session_id=session_id, reply=reply, turn=memory.turn))
        return events

    def forget(self, session_id: str, kind: str, facet: str | None = None,
               value: str | float | None = None) -> dict[str, Any]:
        """Forget one remembered item (the shopper clicked × on a memory chip); returns the new memory JSON.

        ``kind`` is one of ``memory.FORGET_KINDS``: ``must`` / ``avoid`` (``facet``, and ``value`` for one value
        or ``None`` for the whole facet), ``price_min`` / ``price_max`` (``value``, if given, must be the
        remembered bound), ``preference`` ("darker"), ``detail`` (its text) or ``anchor`` (a reference's id).
        Only that item goes: the next turn composes its search from the rest of the memory as before.

        Raises ``SessionNotFound`` for an unknown session, ``NotRemembered`` (a ``ForgetError``, itself a
        ``ValueError``) when the item is not in memory, and ``ForgetError`` for a malformed request. Logged as
        a ``kind="forget"`` turn record, so history, replay and export see it.
        """
        started = time.perf_counter()
        memory = self.sessions.load(session_id)
        what = forget_item(memory, kind, facet, value)
        record = TurnRecord(session_id=session_id, turn=memory.turn, kind="forget", message=f"forget {what}",
                            intent={"forget": kind, "facet": facet, "value": value})
        self._finish(memory, record, started, "")
        return memory.model_dump(mode="json")

    def focus(self, session_id: str, product_id: str) -> dict[str, Any]:
        """Put one product in focus, as if the shopper had just referred to it ("this" in the next message
        resolves to it); returns the new memory JSON. Nothing else changes (unlike a like, it adds no
        anchor). Raises ``SessionNotFound`` for an unknown session. Logged as a ``kind="focus"`` record."""
        started = time.perf_counter()
        memory = self.sessions.load(session_id)
        rank = next((i for i, item in enumerate(memory.shown, start=1) if item.id == product_id), None)
        memory.focus = product_id
        record = TurnRecord(session_id=session_id, turn=memory.turn, kind="focus", message=f"focus {product_id}",
                            intent={"focus": product_id, "product_id": product_id, "rank": rank})
        self._finish(memory, record, started, "")
        return memory.model_dump(mode="json")

    # ---- internals ----------------------------------------------------------------------------------
    def _finish(self, memory: SessionMemory, record: TurnRecord, started: float, reply: str) -> None:
        record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        record.memory = memory.model_dump(mode="json")
        self.sessions.save(memory)
        self.sessions.log(record)

    def _title(self, product_id: str) -> str | None:
        product = self.engine.store.get_product(product_id)
        return product.title if product else None

    def _parse_context(self, memory: SessionMemory, picture: Image.Image | None) -> ParseContext:
        must = memory.constraints.must
        return ParseContext(has_results=bool(memory.shown), n_shown=len(memory.shown), has_image=picture is not None,
                            has_reference=bool(memory.anchors or memory.focus),
                            photo_in_focus=bool(memory.image and memory.focus is None and memory.anchors
                                                and memory.anchors[-1].kind == "image"),
                            category=must.get("category", []),
                            group=must.get("group", []))

    def _upload_dir(self) -> Path:
        return self.settings.home / "uploads"

    def _upload_path(self, key: str | None) -> str | None:
        return str(self._upload_dir() / f"{key}.png") if key else None

    def _accept_image(self, image: Any) -> tuple[Image.Image | None, str | None, str | None]:
        """Load and keep an uploaded photo: (image, key, reference for the log)."""
        if image is None:
            return None, None, None
        from atelier.tools.images import load_image

        reference = None
        if isinstance(image, Image.Image):
            picture = image.convert("RGB")
        else:
            if isinstance(image, (str, Path)):
                reference = str(image)
            picture = load_image(image)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        key = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
        path = self._upload_dir() / f"{key}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buffer.getvalue())
        return picture, key, reference or str(path)

    def _reply(self, turn: Turn) -> Generator[Event, None, str]:
        """Stream the reply: the template as is, or an LLM's wording grounded in the shown products."""
        template = turn.template
        backend = self._backend()
        if backend is not None:
            try:
                text = yield from self._llm_reply(backend, turn)
                if text:
                    return text
            except Exception as exc:  # noqa: BLE001 - any backend failure falls back to the template
                log.warning("LLM reply failed (%s); using the template reply", exc)
        for chunk in _chunks(template):
            yield TextDeltaEvent(text=chunk)
        return template

    def tool_model(self) -> Any | None:
        """The tool-calling chat model that routes turns, if any: the one given, else the configured LLM
        backend's (``ATELIER_LLM=openai``); ``None`` means the deterministic router."""
        if self._tool_model == "auto":
            backend = self._backend()
            try:
                self._tool_model = backend.chat_model() if backend is not None else None
            except Exception as exc:  # noqa: BLE001
                log.warning("no tool-calling model (%s)", exc)
                self._tool_model = None
        return self._tool_model

    def _backend(self) -> Any | None:
        if self._llm is not None:
            return self._llm
        if self.settings.llm == "none":
            return None
        try:
            from atelier.assistant.llm import get_llm
        except ImportError:
            return None
        self._llm = get_llm(self.settings)
        return self._llm

    def _llm_reply(self, backend: Any, turn: Turn) -> Generator[Event, None, str]:
        from atelier.assistant.grounding import GroundedStream
        from atelier.assistant.llm.base import ReplyContext

        summary = turn.memory.summary()
        context = ReplyContext(intent=turn.intent.intent, results=turn.results, memory=summary,
                               template_reply=turn.template, user_message=turn.message, facts=turn.ctx.facts)
        try:
            from atelier.assistant.llm.prompts import system_prompt

            system = system_prompt()
        except ImportError:
            system = ""
        messages = self._history_messages(turn.memory.session_id) + [{"role": "user", "content": turn.message}]
        stream = GroundedStream(backend.stream_reply(system, messages, context), turn.results,
                                facts=[*turn.ctx.facts, turn.template],
                                user_text=[turn.message, json.dumps(summary, default=str)])
        pieces = []
        for piece in stream:
            pieces.append(piece)
            yield TextDeltaEvent(text=piece)
        return "".join(pieces).strip()

    def _history_messages(self, session_id: str) -> list[dict[str, str]]:
        try:
            turns = self.sessions.turns(session_id)
        except SessionNotFound:
            return []
        messages: list[dict[str, str]] = []
        for t in turns[-HISTORY_TURNS:]:
            if t.kind == "message" and not t.error:
                messages += [{"role": "user", "content": t.message}, {"role": "assistant", "content": t.reply}]
        return messages


def _chunks(text: str, words: int = 4) -> Iterator[str]:
    parts = re.findall(r"\S+\s*", text)
    for i in range(0, len(parts), words):
        yield "".join(parts[i:i + words])


def _error_message(exc: Exception) -> tuple[str, str]:
    from atelier.tools.encoders import EncoderError
    from atelier.tools.images import ImageError
    from atelier.tools.store import StoreError

    if isinstance(exc, ImageError):
        return str(exc), "bad_image"
    if isinstance(exc, (StoreError, EncoderError)):
        return str(exc), "unavailable"
    if isinstance(exc, SessionNotFound):
        return str(exc), "not_found"
    return "Sorry, something went wrong on my side while answering; please try again.", "internal"


def _search_args(composed: Any, k: int) -> dict[str, Any]:
    f = composed.filters
    args: dict[str, Any] = {"query": composed.text, "must": f.must, "avoid": f.avoid}
    if f.price_min is not None:
        args["price_min"] = f.price_min
    if f.price_max is not None:
        args["price_max"] = f.price_max
    if f.exclude_ids:
        args["exclude_ids"] = list(f.exclude_ids)
    args["k"] = k
    return args


def _unavailable(turn: Turn, exc: CapabilityUnavailable) -> None:
    turn.template = render("errors", "unavailable", feature=exc.feature)


def _changes_sentence(turn: Turn) -> str:
    """What this turn changed, in words ("Now: blue; not black; up to 27.00.")."""
    i = turn.intent
    parts = []
    for facet, values in i.must.items():
        parts.append(" or ".join(values))
    for facet, values in i.avoid.items():
        parts.append("not " + " or ".join(values))
    for facet, values in i.allow.items():
        parts.append(" or ".join(values) + " allowed again")
    c = turn.memory.constraints
    if "cheaper" in i.relative and c.price_max is not None:
        parts.append(f"up to {c.price_max:.2f}")
    if "pricier" in i.relative and c.price_min is not None:
        parts.append(f"from {c.price_min:.2f}")
    parts += [p.replace("_", " ") for p in i.relative if p not in ("cheaper", "pricier")]
    if i.show_more:
        parts.append("new options")
    if turn.update.similar:
        parts.append("more like your pick")
    if turn.update.liked:
        parts.append("noted what you like")
    if turn.update.disliked:
        parts.append("hid what you disliked")
    return ("Now: " + "; ".join(parts) + ". ") if parts else ""


# ---- handlers -------------------------------------------------------------------------------------
@handles("search", "refine")
def handle_search(turn: Turn) -> Iterator[Event]:
    if turn.update.unresolved and not (turn.intent.has_change() or turn.update.referenced):
        turn.template = render("errors", "unresolved", shown=len(turn.memory.shown),
                               ranks=", ".join(str(r) for r in turn.update.unresolved))
        return
    composed = turn.ctx.compose()
    args = _search_args(composed, turn.assistant.k)
    if turn.update.similar:
        args["exclude_ids"] = list(dict.fromkeys(args.get("exclude_ids", []) + turn.update.similar))
    yield from turn.call("search_products", args)
    yield from present_results(turn)


def present_results(turn: Turn) -> Iterator[Event]:
    results = turn.ctx.results
    yield turn.show(results)
    what = what_text(turn.memory.constraints, fallback=_fallback_noun(turn))
    section = turn.intent.intent if turn.intent.intent in ("search", "refine") else "search"
    extra = {"changes_sentence": _changes_sentence(turn)} if section == "refine" else {}
    turn.template = results_reply(section, results, what=what, **extra)
    if turn.update.notes and "no price to compare" in " ".join(turn.update.notes):
        turn.template = "I have no prices to compare with yet. " + turn.template


def _fallback_noun(turn: Turn) -> str:
    details = " ".join(d.text for d in turn.memory.details[-2:])
    return f"matches for \"{details}\"" if details else "items"


@handles("composed")
def handle_composed(turn: Turn) -> Iterator[Event]:
    update, ctx = turn.update, turn.ctx
    if ctx.image is not None or (not (update.similar or update.referenced or turn.memory.focus)
                                 and turn.memory.image and _restore_image(turn)):
        reference = UPLOADED
    else:
        reference = (update.similar or update.referenced or [turn.memory.focus])[-1]
        if reference is None:
            turn.template = render("errors", "no_reference")
            return
    try:
        yield from turn.call("find_similar", {"reference": reference, "change": turn.intent.change,
                                              "k": turn.assistant.k})
    except CapabilityUnavailable:
        yield from turn.call("search_products", _search_args(ctx.compose(), turn.assistant.k))
    ctx.data["reference"] = reference
    yield from present_composed(turn)


def present_composed(turn: Turn) -> Iterator[Event]:
    results = turn.ctx.results
    yield turn.show(results)
    reference = turn.ctx.data.get("reference")
    change = turn.intent.change
    turn.template = results_reply("composed", results, reference=_subject_text(turn, reference),
                                  change=f", {change}" if change else "")


def _subject(turn: Turn) -> str | None:
    """The product (id) or photo (``UPLOADED``) a question, description or outfit is about."""
    update, memory = turn.update, turn.memory
    if update.referenced or update.similar:
        return (update.referenced or update.similar)[-1]
    if turn.ctx.image is not None:
        return UPLOADED
    if memory.focus:
        return memory.focus
    if memory.image and _restore_image(turn):
        return UPLOADED
    if turn.intent.this and memory.liked:
        return memory.liked[-1]
    return None


def _restore_image(turn: Turn) -> bool:
    """Reload the session's last uploaded photo (a follow-up question about "it")."""
    anchor = next((a for a in reversed(turn.memory.anchors) if a.kind == "image"), None)
    if anchor is None or not anchor.image_path or not Path(anchor.image_path).is_file():
        return False
    from atelier.tools.images import load_image

    turn.ctx.image = load_image(anchor.image_path)
    return True


def _subject_text(turn: Turn, subject: str | None) -> str:
    if subject == UPLOADED:
        return "your photo"
    if subject is None:
        return "that item"
    item = turn.memory.shown_item(subject)
    if item:
        return item.title
    product = turn.ctx.product(subject)
    return product.title if product else "that item"


@handles("outfit")
def handle_outfit(turn: Turn) -> Iterator[Event]:
    subject = _subject(turn)
    if subject is None:
        turn.template = render("errors", "no_reference")
        return
    must = turn.intent.must
    target = (must.get("group") or [None])[0]
    if target is None and must.get("category"):
        from atelier.tools.taxonomy import get_taxonomy

        target = get_taxonomy().group_of(must["category"][0])
    args: dict[str, Any] = {"product_ids": [] if subject == UPLOADED else [subject], "k": 3 if target is None else 5}
    if target:
        args["target_group"] = target
    try:
        yield from turn.call("complete_outfit", args)
    except CapabilityUnavailable as exc:
        _unavailable(turn, exc)
        return
    turn.ctx.data["subject"] = subject
    yield from present_outfit(turn)


def present_outfit(turn: Turn) -> Iterator[Event]:
    for group, items in turn.ctx.slots:
        yield turn.show(items, title=f"{group} to go with it", slot=group)
    reference = _subject_text(turn, turn.ctx.data.get("subject"))
    if not turn.ctx.slots:
        turn.template = render("outfit", "empty", reference=reference)
        return
    picks = "; ".join(f"{group}: {item_text(items[0])}" for group, items in turn.ctx.slots)
    turn.template = render("outfit", "results", reference=reference,
                           slots=", ".join(group for group, _ in turn.ctx.slots), picks=picks)


@handles("question")
def handle_question(turn: Turn) -> Iterator[Event]:
    subject = _subject(turn)
    if subject is None:
        turn.template = render("errors", "no_reference")
        return
    try:
        yield from turn.call("answer_question", {"product_id": subject, "question": turn.message})
    except CapabilityUnavailable as exc:
        _unavailable(turn, exc)
        return
    yield from present_answer(turn)


def present_answer(turn: Turn) -> Iterator[Event]:
    answer = turn.ctx.data.get("answer")
    subject = turn.ctx.data.get("answer_subject")
    if subject and subject != UPLOADED:
        turn.memory.focus = subject
        product = turn.ctx.product(subject)
        if product is not None:
            yield turn.show([SearchResult.from_product(product, 1.0, "the item you asked about")],
                            title="About this item", remember=False)
    reference = _subject_text(turn, subject)
    if answer is None:
        turn.template = render("errors", "no_reference")
    elif answer.answerable:
        turn.template = render("question", "answer", answer=answer.answer, reference=reference)
    else:
        turn.template = render("question", "unknown", answer=answer.answer, reference=reference)


@handles("describe")
def handle_describe(turn: Turn) -> Iterator[Event]:
    if turn.ctx.image is None and not _restore_image(turn):
        turn.template = render("errors", "no_image")
        return
    try:
        yield from turn.call("describe_image", {})
    except CapabilityUnavailable as exc:
        _unavailable(turn, exc)
        return
    yield from present_attributes(turn)


def present_attributes(turn: Turn) -> Iterator[Event]:
    attributes: dict[str, dict[str, Any]] = turn.ctx.data.get("attributes", {})
    known = {k: v for k, v in attributes.items() if v.get("value") not in (None, "", UNKNOWN)}
    order = ("colour", "pattern", "category", "gender")
    words = [f"{known[k]['value']} ({k}, {known[k]['confidence']:.0%} sure)" for k in order if k in known]
    words += [f"{v['value']} ({k}, {v['confidence']:.0%} sure)" for k, v in known.items() if k not in order]
    confident = any(v.get("confidence", 0) >= 0.5 for v in known.values())
    turn.template = render("describe", "results" if confident else "unsure",
                           attributes=", ".join(words) if words else "nothing I can name")
    return iter(())


@handles("compare")
def handle_compare(turn: Turn) -> Iterator[Event]:
    ids = turn.update.referenced[:2]
    if len(ids) < 2:
        turn.template = render("compare", "missing")
        return
    yield from turn.call("compare_products", {"first_id": ids[0], "second_id": ids[1]})
    yield from present_comparison(turn)


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


@handles("help")
def handle_help(turn: Turn) -> Iterator[Event]:
    text = turn.message.lower()
    key = "thanks" if re.search(r"\bthank|\bcheers\b", text) else \
        "greeting" if re.search(r"\b(?:hi|hello|hey|hiya|good (?:morning|evening|afternoon))\b", text) else "help"
    turn.template = templates()["help"][key].strip()
    return iter(())


@handles("start_over")
def handle_start_over(turn: Turn) -> Iterator[Event]:
    turn.template = render("start_over", "done")
    return iter(())


# ---- a tool-calling LLM as the router ------------------------------------------------------------------
MODEL_ROUTED = ("search", "refine", "composed", "outfit", "question", "describe", "compare")
PRESENTERS: dict[str, Callable[[Turn], Iterator[Event]]] = {
    "search_products": present_results, "find_similar": present_composed, "complete_outfit": present_outfit,
    "answer_question": present_answer, "describe_image": present_attributes, "compare_products": present_comparison,
}


def route_with_model(turn: Turn, model: Any) -> Generator[Event, None, bool]:
    """Let a tool-calling chat model pick the tool and its arguments (the memory was already updated by the
    parser, and ``search_products`` composes the memory's cascade). Returns False when the model called no
    tool or failed, so the deterministic handler runs instead."""
    from atelier.assistant.agent_tools import run_tool_agent

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
    yield from PRESENTERS.get(last.name, present_results)(turn)
    return True


def tool_system_prompt(turn: Turn) -> str:
    shown = "\n".join(f"{i}. id={item.id} {item.title} ({item.colour} {item.category}, "
                      f"{price_text(item.price)})" for i, item in enumerate(turn.memory.shown, start=1))
    photo = "The shopper attached a photo: use reference \"uploaded\"." if turn.ctx.image is not None else ""
    return (
        "You route a fashion shopper's message to exactly one tool call. The session memory already holds "
        "their constraints; search_products with use_memory=true applies them, so only pass what this message "
        "adds. Refer to shown products by id.\n"
        f"Memory: {json.dumps(turn.memory.summary(), default=str)}\n"
        f"Shown results:\n{shown or '(none)'}\n{photo}"
    )
