"""The assistant's session API and turn loop: one ``Assistant.turn`` that every interface consumes as a
stream of typed events.

A turn is: parse the message (``assistant.parser``) → write it into the session memory (``memory.update``)
→ route it, by a tool-calling model (``assistant.routing``) or the intent's handler (``assistant.handlers``),
which calls tools (``assistant.agent_tools``, each call streamed as a ``ToolCallEvent``) → show products
(``assistant.present``) → word the reply (``assistant.wording``) → persist the memory and log the turn in
one versioned write (``memory.store``). The engines all of this uses come from one ``Runtime``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from atelier.assistant.agent_tools import TextVectors, ToolContext
from atelier.assistant.events import (DoneEvent, Event, MemoryEvent, ProductsEvent, StatusEvent, TextDeltaEvent,
    error_event)
from atelier.assistant.guard import Verdict, screen
from atelier.assistant.handlers import HANDLERS
from atelier.assistant.parser import ParseContext, TurnParser
from atelier.assistant.replies import item_text, render
from atelier.assistant.routing import MODEL_ROUTED, route_with_model
from atelier.assistant.runtime import AUTO, Runtime
from atelier.assistant.turnstate import Turn
from atelier.assistant.uploads import Uploads
from atelier.assistant.wording import reply_events
from atelier.memory import (FEEDBACK_KINDS, CascadeWeights, SessionMemory, SessionNotFound, SessionStore, TurnRecord,
    apply_feedback, apply_turn, forget_item, record_shown)
from atelier.memory.photos import PhotoStore
from atelier.tools.errors import AtelierError, InputError
from atelier.tools.search import ProductSearch
from atelier.tools.settings import Settings

log = logging.getLogger(__name__)

HISTORY_TURNS = 6


class FeedbackError(InputError):
    """A click the assistant cannot apply (unknown kind)."""


class Assistant:
    """The shopping assistant over one ``Runtime`` (engines) and one sessions database.

    ``engine``, ``parser``, ``llm`` and ``tool_model`` seed a new runtime (tests hand in fakes); pass
    ``runtime`` to share one that is already built (the API, Streamlit and the CLI do).
    """

    def __init__(self, settings: Settings | None = None, *, runtime: Runtime | None = None,
                 engine: ProductSearch | None = None, sessions: SessionStore | None = None,
                 parser: TurnParser | None = None, k: int = 10, weights: CascadeWeights | None = None,
                 llm: Any | None = None, tool_model: Any | None = AUTO) -> None:
        self.runtime = runtime or Runtime(settings, search=engine, parser=parser, llm=llm, tool_model=tool_model)
        self.settings = self.runtime.settings
        self.sessions = sessions or SessionStore(self.settings.db_url)
        self.uploads = Uploads(PhotoStore.from_settings(self.settings))
        self.k = k
        self.weights = weights or CascadeWeights()
        self._image_vectors: dict[str, Any] = {}
        self._text_vectors: TextVectors | None = None

    @property
    def engine(self) -> ProductSearch:
        return self.runtime.search

    @property
    def parser(self) -> TurnParser:
        return self.runtime.parser

    def context(self, memory: SessionMemory, image: Image.Image | None = None) -> ToolContext:
        """A turn's tool context over this assistant's runtime, caches and weights."""
        if self._text_vectors is None:
            self._text_vectors = TextVectors(self.engine.encoder)
        return ToolContext(self.runtime, memory, image, self.k, self.weights, self._image_vectors,
                           text_vectors=self._text_vectors)

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
        turn_before = memory.turn
        record = TurnRecord(session_id=memory.session_id, turn=memory.turn + 1, message=message or "")
        try:
            picture, image_key, image_ref = self.uploads.accept(image)
            record.image = image_ref
            intent = self.parser.parse(message or "", self._parse_context(memory, picture))
            record.intent = intent.model_dump(mode="json", exclude_defaults=True)
            verdict = screen(message or "", intent, has_image=picture is not None)
            if verdict is not None:
                yield from self._refuse(memory, record, verdict, started)
                return
            update = apply_turn(memory, intent, image_key=image_key, image_path=self.uploads.path(image_key))
            focus = memory.focus
            ctx = self.context(memory, picture)
            turn = Turn(memory, intent, update, ctx, message or "", self.k)
            model = self.runtime.tool_model if intent.intent in MODEL_ROUTED else None
            routed = (yield from route_with_model(turn, model)) if model is not None else False
            if not routed:
                yield from HANDLERS[intent.intent](turn)
            yield from ctx.drain()
            if turn.remember_results:
                record_shown(memory, turn.results)
            if ctx.composed is not None:
                memory.last_query = {"text": ctx.composed.text, "cascade": ctx.composed.components}
            backend = self.runtime.llm
            history = self._history_messages(memory.session_id) if backend is not None else []
            reply = yield from reply_events(turn, backend, history)
            record.tool_calls = [c.model_dump(exclude={"type"}) for c in ctx.calls]
            record.result_ids = [r.id for r in turn.results]
        except Exception as exc:  # noqa: BLE001 - every failure ends the stream with a clear error
            error = error_event(exc)
            if not isinstance(exc, AtelierError) or error.code == "internal":
                log.exception("turn failed")
            else:
                log.info("turn failed: %s: %s", type(exc).__name__, exc)
            record.error = f"{type(exc).__name__}: {exc}"
            record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            self.sessions.log(record)
            yield error
            yield DoneEvent(session_id=memory.session_id, reply="", turn=turn_before)
            return
        record.reply = reply

        def replay(fresh: SessionMemory) -> None:
            """This turn's memory changes, again, on a memory another worker wrote meanwhile."""
            apply_turn(fresh, intent, image_key=image_key, image_path=self.uploads.path(image_key))
            if memory.focus != focus:
                fresh.focus = memory.focus
            if turn.remember_results:
                record_shown(fresh, turn.results)
            if ctx.composed is not None:
                fresh.last_query = memory.last_query
            record.turn = fresh.turn

        memory = self._finish(memory, record, started, replay)
        yield MemoryEvent(memory=memory.model_dump(mode="json"))
        yield DoneEvent(session_id=memory.session_id, reply=reply, turn=memory.turn)

    def _refuse(self, memory: SessionMemory, record: TurnRecord, verdict: Verdict, started: float) -> Iterator[Event]:
        """A message the guard kept out of memory: its fixed reply, and a memory that changes only its turn
        counter (so the log stays numbered 1..N)."""
        record.intent["guard"] = verdict.kind
        record.reply = verdict.reply
        yield TextDeltaEvent(text=verdict.reply)

        def replay(fresh: SessionMemory) -> None:
            fresh.turn += 1
            record.turn = fresh.turn

        memory.turn += 1
        memory = self._finish(memory, record, started, replay)
        yield MemoryEvent(memory=memory.model_dump(mode="json"))
        yield DoneEvent(session_id=memory.session_id, reply=verdict.reply, turn=memory.turn)

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
        item = memory.shown_item(product_id)
        title = item.title if item else (self._title(product_id) or product_id)
        record = TurnRecord(session_id=session_id, turn=memory.turn, kind="feedback", message=f"{kind} {product_id}",
                            intent={"feedback": kind, "product_id": product_id, "rank": _rank(memory, product_id)})
        apply_feedback(memory, product_id, kind)
        events: list[Event] = []
        shown: list | None = None
        reply = render("feedback", kind if kind != "more_like_this" else "like", title=title)
        if kind == "more_like_this":
            ctx = self.context(memory)
            composed = ctx.compose()
            args = composed.args(self.k)
            args["exclude_ids"] = list(dict.fromkeys(args.get("exclude_ids", []) + [product_id]))
            events.extend(ctx.call("search_products", args))
            results = shown = ctx.results
            events.append(ProductsEvent(results=results, title=f"More like {title}"))
            record_shown(memory, results)
            memory.last_query = {"text": composed.text, "cascade": composed.components}
            reply = render("feedback", "more_like_this" if results else "more_like_this_empty", title=title,
                           n=len(results), top=item_text(results[0]) if results else "")
            record.tool_calls = [c.model_dump(exclude={"type"}) for c in ctx.calls]
            record.result_ids = [r.id for r in results]
        events.append(TextDeltaEvent(text=reply))
        record.reply = reply

        def replay(fresh: SessionMemory) -> None:
            apply_feedback(fresh, product_id, kind)
            if shown is not None:
                record_shown(fresh, shown)
                fresh.last_query = memory.last_query
            record.turn = fresh.turn

        memory = self._finish(memory, record, started, replay)
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
        memory = self._finish(memory, record, started, lambda fresh: forget_item(fresh, kind, facet, value))
        return memory.model_dump(mode="json")

    def focus(self, session_id: str, product_id: str) -> dict[str, Any]:
        """Put one product in focus, as if the shopper had just referred to it ("this" in the next message
        resolves to it); returns the new memory JSON. Nothing else changes (unlike a like, it adds no
        anchor). Raises ``SessionNotFound`` for an unknown session. Logged as a ``kind="focus"`` record."""
        started = time.perf_counter()
        memory = self.sessions.load(session_id)
        memory.focus = product_id
        record = TurnRecord(session_id=session_id, turn=memory.turn, kind="focus", message=f"focus {product_id}",
                            intent={"focus": product_id, "product_id": product_id, "rank": _rank(memory, product_id)})
        memory = self._finish(memory, record, started, lambda fresh: setattr(fresh, "focus", product_id))
        return memory.model_dump(mode="json")

    # ---- internals ----------------------------------------------------------------------------------
    def _finish(self, memory: SessionMemory, record: TurnRecord, started: float,
                replay: Callable[[SessionMemory], object]) -> SessionMemory:
        """Store the memory and log the turn in one write. If another worker wrote the session since it was
        loaded, ``replay`` makes this turn's changes again on that newer memory (``SessionStore.commit``)."""
        record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return self.sessions.commit(memory, record, rebase=replay)

    def _title(self, product_id: str) -> str | None:
        product = self.engine.product(product_id)
        return product.title if product else None

    def _parse_context(self, memory: SessionMemory, picture: Image.Image | None) -> ParseContext:
        must = memory.constraints.must
        return ParseContext(has_results=bool(memory.shown), n_shown=len(memory.shown), has_image=picture is not None,
                            has_reference=bool(memory.anchors or memory.focus),
                            photo_in_focus=bool(memory.image and memory.focus is None and memory.anchors
                                                and memory.anchors[-1].kind == "image"),
                            category=must.get("category", []),
                            group=must.get("group", []))

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


def _rank(memory: SessionMemory, product_id: str) -> int | None:
    """1-based position of ``product_id`` in the last shown list (for the log)."""
    return next((i for i, item in enumerate(memory.shown, start=1) if item.id == product_id), None)
