"""The assistant's tools, as LangChain tools, so a tool-calling LLM (``langchain.agents.create_agent``) and
the offline deterministic router drive exactly the same functions.

Tools are built per turn over a ``ToolContext``: it holds the session memory and the uploaded photo, records
every call as a ``ToolCallEvent`` and keeps the structured outputs (results, outfit slots, answers) that the
agent shows; the string a tool returns is only what an LLM reads. The engines behind the tools (hybrid
search, ``tools.composed``, ``tools.attributes``, ``tools.vqa``, ``tools.outfit``) come from the turn's
``Runtime``, built once per process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.tools import BaseTool, StructuredTool
from PIL import Image

from atelier.assistant.events import Event, ToolCallEvent
from atelier.assistant.runtime import Runtime
from atelier.memory import CascadeWeights, ComposedQuery, SessionMemory, compose_query, rerank
from atelier.memory.compose import request_text
from atelier.memory.state import Anchor
from atelier.tools.coverage import cover, promote, request_terms
from atelier.tools.query_parser import SearchFilters
from atelier.tools.relevance import Honesty
from atelier.tools.schema import Product, SearchResult
from atelier.tools.search import ProductSearch
from atelier.tools.vectors import unit
from atelier.tools.vqa import answer_question as vqa_answer

UPLOADED = "uploaded"

class TextVectors:
    """Text embeddings remembered across turns: the constraint phrase and each turn's details recur in every
    later turn's cascade, so only new texts reach the encoder."""

    def __init__(self, encoder: Any, size: int = 4096) -> None:
        self.encoder = encoder
        self.size = size
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.size:
                self._cache.clear()
            self._cache.update(zip(missing, self.encoder.embed_texts(missing)))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.encoder.dim), np.float32)


@dataclass
class ToolContext:
    """One turn's shared state: inputs the tools may read, outputs the agent shows."""

    runtime: Runtime
    memory: SessionMemory
    image: Image.Image | None = None
    k: int = 10
    weights: CascadeWeights = field(default_factory=CascadeWeights)
    image_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    pending: list[Event] = field(default_factory=list)
    calls: list[ToolCallEvent] = field(default_factory=list)
    results: list[SearchResult] = field(default_factory=list)
    slots: list[tuple[str, list[SearchResult]]] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    composed: ComposedQuery | None = None
    max_variants: int = 2
    text_vectors: TextVectors | None = None

    def record(self, name: str, args: dict[str, Any]) -> None:
        event = ToolCallEvent(name=name, args=_jsonable(args))
        self.calls.append(event)
        self.pending.append(event)

    def drain(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out

    @property
    def engine(self) -> ProductSearch:
        return self.runtime.search

    def call(self, name: str, args: dict[str, Any]) -> Generator[Event, None, str]:
        """Announce a tool call (streamed before it runs), then run it; returns what the tool said."""
        if "_tools" not in self.data:
            self.data["_tools"] = build_tools(self)
        self.record(name, args)
        yield from self.drain()
        self.data["_announced"] = True
        try:
            return self.data["_tools"][name].invoke(args)
        finally:
            self.data["_announced"] = False

    # ---- memory-backed helpers ----------------------------------------------------------------------
    def compose(self) -> ComposedQuery:
        """The memory's composed query (cached for the turn)."""
        if self.composed is None:
            embed = self.text_vectors or self.engine.encoder.embed_texts
            self.composed = compose_query(self.memory, embed,
                                          lambda ids: self._product_vectors(ids), self._image_vector, self.weights)
        return self.composed

    def _product_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        image = self.engine.vectors(ids, "image")
        text = self.engine.vectors(ids, "text")
        return {pid: unit(unit(image[pid]) + unit(text[pid])) if pid in text else image[pid] for pid in image}

    def _image_vector(self, anchor: Anchor) -> np.ndarray | None:
        if anchor.id in self.image_vectors:
            return self.image_vectors[anchor.id]
        image = self.image if anchor.id == self.memory.image and self.image is not None else None
        if image is None and anchor.image_path:
            from atelier.tools.images import ImageError, load_image

            try:
                image = load_image(anchor.image_path)
            except ImageError:
                return None
        if image is None:
            return None
        vector = self.engine.encoder.embed_images([image])[0]
        self.image_vectors[anchor.id] = vector
        return vector

    def product(self, product_id: str) -> Product | None:
        return self.engine.product(product_id)

    def reference_product(self) -> Product | None:
        """The product that relative preferences compare with: the focus, else the newest product anchor."""
        pid = self.memory.focus or next((a.id for a in reversed(self.memory.anchors) if a.kind == "product"), None)
        return self.product(pid) if pid else None


def diversify(results: list[SearchResult], k: int, per_product: int = 2) -> list[SearchResult]:
    """At most ``per_product`` colour variants of one product (H&M ``product_code``) in the top ``k``; the
    rest fill in after, so a list is never shorter for it."""
    counts: dict[str, int] = {}
    first, later = [], []
    for r in results:
        key = (r.product.family if r.product else None) or r.id
        counts[key] = counts.get(key, 0) + 1
        (first if counts[key] <= per_product else later).append(r)
    return (first + later)[:k]



def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _result_lines(results: list[SearchResult], honesty: Honesty | None = None) -> str:
    if not results:
        return "No products matched."
    lines = [] if honesty is None or honesty.match else [honesty.note()]
    for rank, r in enumerate(results, start=1):
        price = "no price" if r.price is None else f"{r.price:.2f}"
        lines.append(f"{rank}. [{r.id}] {r.title} — {r.colour} {r.pattern} {r.category} ({r.gender}), {price}")
    return "\n".join(lines)


def build_tools(ctx: ToolContext) -> dict[str, BaseTool]:
    """The turn's tools by name; each call is recorded on ``ctx`` before it runs."""

    def search_products(query: str = "", must: dict[str, list[str]] | None = None,
                        avoid: dict[str, list[str]] | None = None, price_min: float | None = None,
                        price_max: float | None = None, exclude_ids: list[str] | None = None, k: int = 10,
                        use_memory: bool = True) -> str:
        """Search the catalog. must/avoid map a facet (category, group, colour, pattern, gender) to values.
        With use_memory the session memory (earlier constraints, liked and reference products) shapes the query."""
        filters = SearchFilters(must=must or {}, avoid=avoid or {}, price_min=price_min, price_max=price_max,
                                exclude_ids=exclude_ids or [])
        vector = None
        text = query
        if use_memory:
            composed = ctx.compose()
            filters = composed.filters.merged(filters)
            vector = composed.vector
            text = query or composed.text
        preferences = ctx.memory.preferences if use_memory else []
        pool = max(3 * k, 30)
        terms = request_terms(request_text(ctx.memory) if use_memory else text)
        outcome = ctx.engine.search_outcome(text or "fashion", filters, pool, parse=not use_memory,
                                            query_vector=vector, terms=terms)
        results = outcome.results if outcome.verdict.show else []
        results = diversify(rerank(results, preferences, ctx.reference_product(), pool), k, ctx.max_variants)
        ctx.results = promote(results, cover(terms, results))
        ctx.data["honesty"] = Honesty.of(outcome.verdict, cover(terms, ctx.results), bool(ctx.results))
        return _result_lines(ctx.results, ctx.data["honesty"])

    def find_similar(reference: str, change: str = "", k: int = 10) -> str:
        """Products like a reference (a product id, or "uploaded" for the shopper's photo) changed as `change`
        says ("in black", "without the print", "cheaper")."""
        ref: str | Image.Image = ctx.image if reference == UPLOADED and ctx.image is not None else reference
        filters = ctx.memory.filters()
        results = ctx.runtime.composed.search(ref, change, k, filters)
        ctx.results = [r for r in results if r.id not in set(filters.exclude_ids)][:k]
        return _result_lines(ctx.results)

    def complete_outfit(product_ids: list[str] | None = None, target_group: str | None = None, k: int = 5) -> str:
        """Items from other groups (shoes, bags, outerwear...) that go with the given products or the photo."""
        filters = SearchFilters(exclude_ids=ctx.memory.filters().exclude_ids)
        slots = ctx.runtime.completer.complete(list(product_ids or []), image=ctx.image if not product_ids else None,
                                               target_group=target_group, k=k, filters=filters)
        ctx.slots = [(slot.group, list(slot.items)) for slot in slots if slot.items]
        ctx.results = [item for _, items in ctx.slots for item in items]
        return "\n".join(f"{group}:\n{_result_lines(items)}" for group, items in ctx.slots) or "No matching items."

    def answer_question(product_id: str, question: str) -> str:
        """Answer a question about a product (id) or the uploaded photo ("uploaded") from its data and picture."""
        if product_id == UPLOADED:
            if ctx.image is None:
                return "There is no photo to look at."
            answer = vqa_answer(ctx.image, question, extractor=ctx.runtime.extractor)
        else:
            product = ctx.product(product_id)
            if product is None:
                return f"Unknown product {product_id}."
            answer = vqa_answer(product, question)
        ctx.data["answer"] = answer
        ctx.data["answer_subject"] = product_id
        ctx.facts.append(answer.answer)
        return answer.answer

    def describe_image() -> str:
        """Attributes (category, colour, pattern, ...) of the shopper's uploaded photo, with confidences."""
        if ctx.image is None:
            return "There is no photo to describe."
        raw = ctx.runtime.extractor.predict_images([ctx.image])[0]
        attributes = {name: {"value": p.value, "confidence": round(float(p.confidence), 3)}
                      for name, p in raw.items()}
        ctx.data["attributes"] = attributes
        ctx.facts.append(json.dumps(attributes))
        return json.dumps(attributes)

    def compare_products(first_id: str, second_id: str) -> str:
        """Compare two products side by side: category, colour, pattern, price and description."""
        products = [ctx.product(first_id), ctx.product(second_id)]
        if any(p is None for p in products):
            return "One of these products is not in the catalog."
        comparison = compare(products[0], products[1])  # type: ignore[arg-type]
        ctx.data["comparison"] = comparison
        ctx.results = [SearchResult.from_product(p, 1.0, "compared") for p in products]  # type: ignore[arg-type]
        return json.dumps(comparison)

    def get_product(product_id: str) -> str:
        """The full catalog entry of one product."""
        product = ctx.product(product_id)
        if product is None:
            return f"Unknown product {product_id}."
        return product.model_dump_json(exclude={"attributes"})

    functions = [search_products, find_similar, complete_outfit, answer_question, describe_image,
                 compare_products, get_product]
    return {f.__name__: _recorded(ctx, f) for f in functions}


_SCHEMAS: dict[str, Any] = {}


def _recorded(ctx: ToolContext, function: Callable[..., str]) -> BaseTool:
    """A LangChain tool that records each call on ``ctx`` (argument schemas are built once per process)."""
    @functools.wraps(function)
    def run(**kwargs: Any) -> str:
        if not ctx.data.get("_announced"):
            ctx.record(function.__name__, kwargs)
        return function(**kwargs)

    name = function.__name__
    tool = StructuredTool.from_function(run, name=name, description=function.__doc__,
                                        args_schema=_SCHEMAS.get(name), infer_schema=name not in _SCHEMAS)
    _SCHEMAS.setdefault(name, tool.args_schema)
    return tool


COMPARED = ("category", "colour", "pattern", "gender")


def compare(first: Product, second: Product) -> dict[str, Any]:
    """A side-by-side comparison: shared and differing facets, price difference, first description sentence."""
    same = {f: getattr(first, f) for f in COMPARED if getattr(first, f) == getattr(second, f)}
    differ = {f: [getattr(first, f), getattr(second, f)] for f in COMPARED if getattr(first, f) != getattr(second, f)}
    out: dict[str, Any] = {"ids": [first.id, second.id], "titles": [first.title, second.title], "same": same,
                           "different": differ, "prices": [first.price, second.price],
                           "summaries": [_first_sentence(first.description), _first_sentence(second.description)]}
    if first.price is not None and second.price is not None:
        out["cheaper"] = 0 if first.price < second.price else 1 if second.price < first.price else None
        out["difference"] = round(abs(first.price - second.price), 2)
    return out


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].strip().rstrip(".") if text else ""
