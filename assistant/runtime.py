"""The shared engines of one running Atelier, built once from ``Settings`` and passed down.

The Assistant, the HTTP API (``ui.api.Services``), the Streamlit app and the CLI each hold one ``Runtime``
instead of reaching for module globals: the search engine, composed search, attribute extractor, outfit
completer, turn parser and LLM backend are built on first use, under one lock (API turns run in worker
threads), and shared from then on. Tests hand in fakes (``Runtime(settings, search=..., parser=...)``).
Immutable data (YAML prompts, the taxonomy, loaded model weights) stays in ``functools`` caches: it does
not depend on settings, so there is nothing to pass down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from atelier.tools.settings import Settings, get_settings

if TYPE_CHECKING:
    from atelier.assistant.parser import TurnParser
    from atelier.tools.attributes import AttributeExtractor
    from atelier.tools.composed import ComposedSearch
    from atelier.tools.outfit import OutfitCompleter
    from atelier.tools.search import ProductSearch

log = logging.getLogger(__name__)
T = TypeVar("T")
AUTO = "auto"


class Runtime:
    """Engines for one ``Settings``, each built lazily once (thread-safe) and shared by every caller."""

    def __init__(self, settings: Settings | None = None, *, search: "ProductSearch | None" = None,
                 parser: "TurnParser | None" = None, llm: Any | None = None, tool_model: Any | None = AUTO) -> None:
        self.settings = settings or get_settings()
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}
        self.provide(search=search, parser=parser, llm=llm)
        if tool_model != AUTO:
            self._built["tool_model"] = tool_model

    def provide(self, **engines: Any) -> None:
        """Use these engines instead of building them (``None`` values are ignored)."""
        with self._lock:
            self._built.update({name: engine for name, engine in engines.items() if engine is not None})

    def _get(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    def warm(self) -> None:
        """Build every engine and run each model once, at start-up, so no shopper's first turn pays for loading
        the store index, the text and image towers or the parser's exemplars (seconds each on a cold CPU)."""
        from PIL import Image

        self.search.warm()
        for engine in ("parser", "extractor", "composed", "completer"):
            try:
                built = getattr(self, engine)
                if engine == "parser":
                    built.parse("a black dress under 40")
                if engine == "extractor":
                    built.predict_images([Image.new("RGB", (64, 96), (200, 30, 40))])
            except Exception as exc:  # noqa: BLE001 - an optional engine failing must not stop text turns
                log.warning("could not build the %s at startup (%s); turns that need it will say so", engine, exc)
        self._warm_one_thread_sessions()

    def _warm_one_thread_sessions(self) -> None:
        """Open the one-thread model sessions that turns running side by side use (``tools.encoders.threads``)
        now, not in the first shopper's turn that meets another."""
        import os

        from PIL import Image

        from atelier.tools.encoders.threads import one_thread, set_budget

        if (os.cpu_count() or 1) < 2:
            return
        set_budget(one_thread)
        try:
            self.search.encoder.embed_texts(["warm-up one thread"])
            self.search.encoder.embed_images([Image.new("RGB", (64, 96), (200, 30, 40))])
        except Exception as exc:  # noqa: BLE001 - the sessions then open on first use
            log.warning("could not open the one-thread model sessions at startup (%s)", exc)
        finally:
            set_budget(None)

    @property
    def search(self) -> "ProductSearch":
        from atelier.tools.search import ProductSearch

        return self._get("search", lambda: ProductSearch.from_settings(self.settings))

    @property
    def extractor(self) -> "AttributeExtractor":
        """Attributes of uploaded photos, over the configured encoder (the one the probes were trained on)."""
        from atelier.tools.attributes import AttributeExtractor
        from atelier.tools.encoders import load_encoder

        return self._get("extractor", lambda: AttributeExtractor(load_encoder(self.settings.encoder)))

    @property
    def composed(self) -> "ComposedSearch":
        from atelier.tools.candidates import StoreIndex
        from atelier.tools.composed import ComposedSearch

        def build() -> ComposedSearch:
            search = self.search
            return ComposedSearch(StoreIndex(search.store, search), search.encoder, extractor=self.extractor)

        return self._get("composed", build)

    @property
    def completer(self) -> "OutfitCompleter":
        from atelier.tools.outfit import OutfitCompleter

        return self._get("completer", lambda: OutfitCompleter(self.search.store, self.search.encoder,
                                                              extractor=self.extractor))

    @property
    def parser(self) -> "TurnParser":
        """The turn parser ``ATELIER_PARSER`` names (the rules, or the LLM over them)."""
        from atelier.assistant.parser import build_parser

        return self._get("parser", lambda: build_parser(self.settings))

    @property
    def llm(self) -> Any | None:
        """The reply backend ``ATELIER_LLM`` names, or ``None`` for template replies."""
        def build() -> Any | None:
            if self.settings.llm == "none":
                return None
            from atelier.assistant.llm import get_llm

            return get_llm(self.settings)

        return self._get("llm", build)

    @property
    def tool_model(self) -> Any | None:
        """The tool-calling chat model that routes turns: the one given, else the LLM backend's
        (``ATELIER_LLM=openai``); ``None`` means the deterministic router."""
        def build() -> Any | None:
            backend = self.llm
            try:
                return backend.chat_model() if backend is not None else None
            except Exception as exc:  # noqa: BLE001 - no tool model is a supported configuration
                log.warning("no tool-calling model (%s)", exc)
                return None

        return self._get("tool_model", build)
